//! Configuration: every setting comes from an environment variable (or the matching `--flag`),
//! with a default that works on a developer machine started by `scripts/up`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use secrecy::{ExposeSecret, SecretString};

/// The development default of `JWT_SECRET`; the server warns when it runs with it.
pub const DEV_JWT_SECRET: &str = "dev-secret-change-me";

/// Settings of one server instance. `Config::from_env()` reads them; tests start from it and
/// override what they isolate (database, Redis prefix, topic names).
#[derive(Debug, Clone, Parser)]
pub struct Config {
    /// PostgreSQL URL. Env `DATABASE_URL`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/concert_reservation"
    )]
    pub database_url: String,

    /// Maximum PostgreSQL connections in this instance's pool. Env `DATABASE_POOL_SIZE`.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 32)]
    pub database_pool_size: u32,

    /// How long a request waits for a pooled connection before it fails with `UNAVAILABLE`.
    /// Env `DATABASE_POOL_TIMEOUT_MS`.
    #[arg(long, env = "DATABASE_POOL_TIMEOUT_MS", default_value_t = 5_000)]
    pub database_pool_timeout_ms: u64,

    /// Most holds, payments, cancellations and charges running at once in this instance; one more
    /// is answered `BUSY` with `extensions.retryAfterMs` at once instead of waiting for a pooled
    /// connection. 0 takes it from the pool: twice `DATABASE_POOL_SIZE`, so at most one request
    /// waits for each connection (a wait of about one hold or payment) and the next is refused.
    /// Env `BOOKING_CONCURRENCY`.
    #[arg(long, env = "BOOKING_CONCURRENCY", default_value_t = 0)]
    pub booking_concurrency: u32,

    /// About how long a client refused by the booking limit should wait before it retries (the
    /// hint is spread ±50 %). Env `BUSY_RETRY_AFTER_MS`.
    #[arg(long, env = "BUSY_RETRY_AFTER_MS", default_value_t = 250)]
    pub busy_retry_after_ms: u64,

    /// How many waiting-room calls (`enterQueue`, `queueStatus`) one instance serves at once;
    /// more are answered `BUSY` at once, with a retry hint of about a second. 0: three quarters
    /// of the Redis pool, so the booking path always finds a Redis connection. Env
    /// `QUEUE_CONCURRENCY`.
    #[arg(long, env = "QUEUE_CONCURRENCY", default_value_t = 0)]
    pub queue_concurrency: u32,

    /// About how long a fan refused by the waiting room's limit should wait (spread ±50 %).
    /// Env `QUEUE_BUSY_RETRY_AFTER_MS`.
    #[arg(long, env = "QUEUE_BUSY_RETRY_AFTER_MS", default_value_t = 1_000)]
    pub queue_busy_retry_after_ms: u64,

    /// PostgreSQL connections of the background work (outbox relay, expiry sweeper and consumer),
    /// a pool of their own so requests never starve them. Env `DATABASE_BACKGROUND_POOL_SIZE`.
    #[arg(long, env = "DATABASE_BACKGROUND_POOL_SIZE", default_value_t = 4)]
    pub database_background_pool_size: u32,

    /// `statement_timeout` set on every connection. Env `DATABASE_STATEMENT_TIMEOUT_MS`.
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT_MS", default_value_t = 5_000)]
    pub database_statement_timeout_ms: u64,

    /// `lock_timeout` set on every connection; holds use SKIP LOCKED and never wait, this bounds
    /// every other lock wait. Env `DATABASE_LOCK_TIMEOUT_MS`.
    #[arg(long, env = "DATABASE_LOCK_TIMEOUT_MS", default_value_t = 2_000)]
    pub database_lock_timeout_ms: u64,

    /// Redis URL. Env `REDIS_URL`.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Maximum Redis connections in this instance's pool. Env `REDIS_POOL_SIZE`.
    #[arg(long, env = "REDIS_POOL_SIZE", default_value_t = 64)]
    pub redis_pool_size: u32,

    /// Prefix of every Redis key this instance writes, so several deployments (or tests) can
    /// share one Redis. Env `REDIS_KEY_PREFIX`.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "cr:")]
    pub redis_key_prefix: String,

    /// Kafka bootstrap servers, comma-separated. Env `KAFKA_BROKERS`.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,

    /// Topic of hold-expiry events. Env `KAFKA_TOPIC_SEATS_EXPIRED`.
    #[arg(
        long,
        env = "KAFKA_TOPIC_SEATS_EXPIRED",
        default_value = "seats.expired"
    )]
    pub kafka_topic_seats_expired: String,

    /// Topic of the other booking events (holds, payments, cancellations).
    /// Env `KAFKA_TOPIC_BOOKING_EVENTS`.
    #[arg(
        long,
        env = "KAFKA_TOPIC_BOOKING_EVENTS",
        default_value = "booking.events"
    )]
    pub kafka_topic_booking_events: String,

    /// Partitions of topics the server creates at start-up. Env `KAFKA_TOPIC_PARTITIONS`.
    #[arg(long, env = "KAFKA_TOPIC_PARTITIONS", default_value_t = 3)]
    pub kafka_topic_partitions: i32,

    /// HS256 secret that signs and verifies access tokens (JWT). Set it in every real deployment.
    /// Env `JWT_SECRET`.
    /// Never printed: `Debug` shows it redacted.
    #[arg(long, env = "JWT_SECRET", default_value = DEV_JWT_SECRET, hide_env_values = true, value_parser = parse_secret)]
    pub jwt_secret: SecretString,

    /// Required `iss` claim of access tokens. Env `JWT_ISSUER`.
    #[arg(long, env = "JWT_ISSUER", default_value = "concert-reservation")]
    pub jwt_issuer: String,

    /// Required `aud` claim of access tokens. Env `JWT_AUDIENCE`.
    #[arg(long, env = "JWT_AUDIENCE", default_value = "concert-reservation")]
    pub jwt_audience: String,

    /// Most fans moved from WAITING to ACTIVE per second, per concert (a concert may set its own
    /// with `queue set`). Adaptive admission stays at or below it. Env `QUEUE_ADMIT_PER_SECOND`.
    #[arg(long, env = "QUEUE_ADMIT_PER_SECOND", default_value_t = 50.0)]
    pub queue_admit_per_second: f64,

    /// Adaptive admission: the admitter lowers the rate when the booking path is degraded and
    /// raises it back when it has headroom (AIMD). `false` admits at the configured rate.
    /// Env `QUEUE_ADAPTIVE`.
    #[arg(long, env = "QUEUE_ADAPTIVE", default_value_t = true, action = clap::ArgAction::Set)]
    pub queue_adaptive: bool,

    /// The booking path's latency target: a hold, payment, cancellation or charge longer than
    /// this counts as slow, and more than 5 % slow means degraded. Env `BOOKING_LATENCY_TARGET_MS`.
    #[arg(long, env = "BOOKING_LATENCY_TARGET_MS", default_value_t = 250)]
    pub booking_latency_target_ms: u64,

    /// Most ACTIVE tokens per concert at once. Env `QUEUE_ACTIVE_CAP`.
    #[arg(long, env = "QUEUE_ACTIVE_CAP", default_value_t = 500)]
    pub queue_active_cap: u32,

    /// How long an ACTIVE token stays valid. Env `QUEUE_ACTIVE_TTL_SECONDS`.
    #[arg(long, env = "QUEUE_ACTIVE_TTL_SECONDS", default_value_t = 600)]
    pub queue_active_ttl_seconds: u64,

    /// An ACTIVE fan who holds no seat for this long loses the slot (a hold keeps it until the
    /// hold ends, then this long again). 0 turns it off. Env `QUEUE_ACTIVE_IDLE_SECONDS`.
    #[arg(long, env = "QUEUE_ACTIVE_IDLE_SECONDS", default_value_t = 120)]
    pub queue_active_idle_seconds: u64,

    /// The longest `pollAfterSeconds` a WAITING fan is told (fans near the front are told 1 s; a
    /// SOLD_OUT fan five times this). Env `QUEUE_POLL_MAX_SECONDS`.
    #[arg(long, env = "QUEUE_POLL_MAX_SECONDS", default_value_t = 2)]
    pub queue_poll_max_seconds: u64,

    /// A WAITING token whose holder neither polled nor subscribed for this long is dropped.
    /// Env `QUEUE_WAITING_GRACE_SECONDS`.
    #[arg(long, env = "QUEUE_WAITING_GRACE_SECONDS", default_value_t = 30)]
    pub queue_waiting_grace_seconds: u64,

    /// Period of the admission tick. 0 disables this instance's admitter (tests tick by hand).
    /// Env `QUEUE_TICK_MS`.
    #[arg(long, env = "QUEUE_TICK_MS", default_value_t = 250)]
    pub queue_tick_ms: u64,

    /// How long Redis keeps a token's record after its last change. Env `QUEUE_TOKEN_TTL_SECONDS`.
    #[arg(long, env = "QUEUE_TOKEN_TTL_SECONDS", default_value_t = 86_400)]
    pub queue_token_ttl_seconds: u64,

    /// How long a seat hold lasts before it expires unpaid. Env `HOLD_TTL_SECONDS`.
    #[arg(long, env = "HOLD_TTL_SECONDS", default_value_t = 300)]
    pub hold_ttl_seconds: u64,

    /// Most seats one hold may take. Env `HOLD_MAX_SEATS`.
    #[arg(long, env = "HOLD_MAX_SEATS", default_value_t = 4)]
    pub hold_max_seats: u32,

    /// Most seats one fan may have of a performance, held and bought together; 0: no limit.
    /// Beyond it a hold answers `TICKET_LIMIT`. Env `MAX_TICKETS_PER_FAN` (0 to 1,000).
    #[arg(long, env = "MAX_TICKETS_PER_FAN", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=1_000))]
    pub max_tickets_per_fan: u32,

    /// A paid booking can be cancelled (and refunded) until this many hours before its
    /// performance; after that `cancelReservation` answers `NOT_REFUNDABLE`. Env
    /// `REFUND_DEADLINE_HOURS` (0 to 87,600: ten years).
    #[arg(long, env = "REFUND_DEADLINE_HOURS", default_value_t = 24,
          value_parser = clap::value_parser!(u64).range(0..=87_600))]
    pub refund_deadline_hours: u64,

    /// How long a schedule's seat map stays cached in Redis; 0 disables the cache.
    /// Env `SEAT_MAP_CACHE_TTL_SECONDS`.
    #[arg(long, env = "SEAT_MAP_CACHE_TTL_SECONDS", default_value_t = 2)]
    pub seat_map_cache_ttl_seconds: u64,

    /// Largest single `chargePoints` amount. Env `MAX_CHARGE_POINTS`.
    #[arg(long, env = "MAX_CHARGE_POINTS", default_value_t = 10_000_000)]
    pub max_charge_points: i64,

    /// Consumer group of this service's Kafka consumers. Env `KAFKA_CONSUMER_GROUP`.
    #[arg(
        long,
        env = "KAFKA_CONSUMER_GROUP",
        default_value = "concert-reservation"
    )]
    pub kafka_consumer_group: String,

    /// Run the `seats.expired` consumer in this instance. Env `KAFKA_CONSUMER_ENABLED`.
    #[arg(long, env = "KAFKA_CONSUMER_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub kafka_consumer_enabled: bool,

    /// Period of the outbox relay; 0 disables it in this instance. Env `OUTBOX_RELAY_INTERVAL_MS`.
    #[arg(long, env = "OUTBOX_RELAY_INTERVAL_MS", default_value_t = 200)]
    pub outbox_relay_interval_ms: u64,

    /// Outbox rows one relay pass claims and publishes. Env `OUTBOX_RELAY_BATCH`.
    #[arg(long, env = "OUTBOX_RELAY_BATCH", default_value_t = 500)]
    pub outbox_relay_batch: i64,

    /// Period of the expiry sweep; 0 disables it in this instance. Env `EXPIRY_SWEEP_INTERVAL_MS`.
    #[arg(long, env = "EXPIRY_SWEEP_INTERVAL_MS", default_value_t = 1_000)]
    pub expiry_sweep_interval_ms: u64,

    /// Holds one sweep expires at most. Env `EXPIRY_SWEEP_BATCH`.
    #[arg(long, env = "EXPIRY_SWEEP_BATCH", default_value_t = 1_000)]
    pub expiry_sweep_batch: i64,

    /// Seats whose hold ran out this long ago and that no consumer released are freed by the
    /// sweeper itself (broker or consumer down). Env `EXPIRY_BACKSTOP_SECONDS`.
    #[arg(long, env = "EXPIRY_BACKSTOP_SECONDS", default_value_t = 30)]
    pub expiry_backstop_seconds: u64,

    /// Period of the retention pass (published outbox rows and old idempotency keys deleted);
    /// 0 disables it in this instance. Env `RETENTION_INTERVAL_SECONDS`.
    #[arg(long, env = "RETENTION_INTERVAL_SECONDS", default_value_t = 60)]
    pub retention_interval_seconds: u64,

    /// Published outbox rows older than this are deleted (Kafka has them; the rows are kept
    /// for investigations). Env `OUTBOX_RETENTION_SECONDS`.
    #[arg(long, env = "OUTBOX_RETENTION_SECONDS", default_value_t = 7 * 86_400)]
    pub outbox_retention_seconds: u64,

    /// Idempotency keys older than this are deleted: a client may retry a request with the
    /// same key for this long, and no longer. Env `IDEMPOTENCY_KEY_RETENTION_SECONDS`.
    #[arg(
        long,
        env = "IDEMPOTENCY_KEY_RETENTION_SECONDS",
        default_value_t = 86_400
    )]
    pub idempotency_key_retention_seconds: u64,

    /// Address the HTTP server listens on. Env `BIND_ADDR`.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind_addr: SocketAddr,

    /// Origins browsers may call the API from, comma-separated; `*` allows any.
    /// Env `CORS_ALLOWED_ORIGINS`.
    #[arg(
        long,
        env = "CORS_ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = "http://localhost:3000,http://127.0.0.1:3000"
    )]
    pub cors_allowed_origins: Vec<String>,

    /// Largest accepted request body, in bytes. Env `MAX_BODY_BYTES`.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Time limit of one HTTP request. Env `REQUEST_TIMEOUT_MS`.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,

    /// Log lines as human-readable `text`, or `json` (one object per line, for log shippers).
    /// Env `LOG_FORMAT`.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Whether clients may introspect the schema (`__schema`, `__type`): GraphiQL's docs and
    /// code generators need it; a production deployment may turn it off, and such queries are
    /// then refused with `INTROSPECTION_DISABLED`. Env `GRAPHQL_INTROSPECTION`.
    #[arg(long, env = "GRAPHQL_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub graphql_introspection: bool,

    /// Deepest field nesting a query may have (fields under `__schema` and `__type` have a bound
    /// of their own, 20). Env `GRAPHQL_MAX_DEPTH`.
    #[arg(long, env = "GRAPHQL_MAX_DEPTH", default_value_t = 10)]
    pub graphql_max_depth: usize,

    /// How many automatic persisted queries (sent by SHA-256 hash) each instance remembers.
    /// Env `PERSISTED_QUERY_CACHE`.
    #[arg(long, env = "PERSISTED_QUERY_CACHE", default_value_t = 1_000)]
    pub persisted_query_cache: usize,

    /// Allow-list mode: a JSON file `{"<sha256 hex>": "<query>"}`; only those operations run (by
    /// hash or as text), anything else is refused with `PERSISTED_QUERY_NOT_ALLOWED`. Unset: any
    /// query runs. Env `GRAPHQL_ALLOWED_OPERATIONS`.
    #[arg(long, env = "GRAPHQL_ALLOWED_OPERATIONS")]
    pub graphql_allowed_operations: Option<std::path::PathBuf>,

    /// The most aliased fields one query may use (through its fragments); more are refused
    /// with `TOO_MANY_ALIASES`. Env `GRAPHQL_MAX_ALIASES`.
    #[arg(long, env = "GRAPHQL_MAX_ALIASES", default_value_t = 30)]
    pub graphql_max_aliases: usize,

    /// Largest query cost: one point per field, a list field times the items it can return (its
    /// `limit`, or the bounds in `graphql::cost`), so about the most fields an answer may hold.
    /// Env `GRAPHQL_MAX_COMPLEXITY`.
    #[arg(long, env = "GRAPHQL_MAX_COMPLEXITY", default_value_t = 250_000)]
    pub graphql_max_complexity: usize,

    /// Most operations in one batched request. Env `GRAPHQL_MAX_BATCH`.
    #[arg(long, env = "GRAPHQL_MAX_BATCH", default_value_t = 10)]
    pub graphql_max_batch: usize,

    /// Most directives on one field. Env `GRAPHQL_MAX_DIRECTIVES`.
    #[arg(long, env = "GRAPHQL_MAX_DIRECTIVES", default_value_t = 4)]
    pub graphql_max_directives: usize,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

impl Config {
    /// True when `JWT_SECRET` is the development default (the server warns).
    pub fn uses_dev_jwt_secret(&self) -> bool {
        self.jwt_secret.expose_secret() == DEV_JWT_SECRET
    }

    /// Reads the configuration from the environment, with defaults for what is not set.
    pub fn from_env() -> Result<Self, clap::Error> {
        Self::try_parse_from(["concert-reservation"])
    }

    pub fn database_pool_timeout(&self) -> Duration {
        Duration::from_millis(self.database_pool_timeout_ms)
    }

    /// The booking limit's size: `BOOKING_CONCURRENCY`, or twice the pool's size when that is 0.
    pub fn booking_slots(&self) -> usize {
        let slots = if self.booking_concurrency == 0 {
            self.database_pool_size.saturating_mul(2)
        } else {
            self.booking_concurrency
        };
        slots as usize
    }

    /// The waiting room's limit: `QUEUE_CONCURRENCY`, or three quarters of the Redis pool.
    pub fn queue_slots(&self) -> usize {
        let slots = if self.queue_concurrency == 0 {
            (self.redis_pool_size.saturating_mul(3) / 4).max(1)
        } else {
            self.queue_concurrency
        };
        slots as usize
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jwt_secret_is_never_printed() {
        let config = Config::try_parse_from(["cr", "--jwt-secret", "hunter2-do-not-print"])
            .expect("the flags parse");
        assert_eq!(config.jwt_secret.expose_secret(), "hunter2-do-not-print");
        let printed = format!("{config:?}");
        assert!(printed.contains("jwt_secret"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn log_format_is_part_of_the_configuration() {
        let config = Config::try_parse_from(["cr", "--log-format", "json"]).expect("parses");
        assert_eq!(config.log_format, LogFormat::Json);
        assert!(Config::try_parse_from(["cr", "--log-format", "xml"]).is_err());
    }
}
