//! The test harness: a real server on a free port, backed by real PostgreSQL, Redis and Kafka.
//! Each test gets its own database (a copy of a migrated template), its own Redis key prefix and
//! its own Kafka topics, so tests run in parallel and in any order. `Drop` removes all three.
//!
//! Tests act through the API ([`api`]: one method per operation), stage data with [`stage`],
//! drive the background workers with [`workers`] and check the data model with [`invariants`]
//! (`verify`'s named checks). The library's internals are reached from this folder only, so a
//! rename inside `src/` is fixed here, once.

pub mod api;
pub mod broker;
pub mod files;
pub mod in_process;
pub mod invariants;
pub mod outage;
pub mod prequeue;
pub mod schema;
pub mod stage;
pub mod workers;
pub mod ws;

pub use api::{Outcome, Reservation};
pub use stage::{CONCERT, Fan, SCHEDULE};

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use concert_reservation::app::App;
use concert_reservation::config::Config;
use concert_reservation::seed::{self, SeedOptions, SeedSummary};
use concert_reservation::startup::Application;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

/// Polls `check` every 100 ms until it holds; panics with `what` after `timeout`.
pub async fn eventually(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if check().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within {timeout:?}");
}

/// The caller as the services see it.
/// The `extensions.code` of the first error of a GraphQL answer.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code: {body}"))
}

pub fn viewer(user: i64) -> concert_reservation::auth::Viewer {
    concert_reservation::auth::Viewer::fan(concert_reservation::ids::UserId(user))
}

/// One row with one BIGINT column `n`.
#[derive(diesel::QueryableByName)]
pub struct Scalar {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub n: i64,
}

/// The `n` of `sql`'s single row, read on a direct connection to the test's database.
pub async fn scalar(app: &TestApp, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Scalar>(&mut app.db().await)
        .await
        .expect("the query answers one row with `n`")
        .n
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub config: Config,
    /// The server's application context, for the helpers here only.
    context: App,
    /// The admitter tests tick by hand: one instance, so it keeps the concerts' leases between
    /// ticks; it budgets as if it ticked once a second.
    admitter: concert_reservation::queue::admitter::Admitter,
    pub client: reqwest::Client,
    database: String,
    admin_url: String,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns a server whose configuration `customize` may change first.
    pub async fn spawn_with(customize: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::from_env().expect("test configuration parses");
        concert_reservation::telemetry::init(config.log_format);
        let id = Uuid::new_v4().simple().to_string();
        let admin_url = database_url_for(&config.database_url, "postgres");
        let database = format!("cr_test_{id}");
        create_test_database(&admin_url, &config.database_url, &database).await;
        config.database_url = database_url_for(&config.database_url, &database);
        config.database_pool_size = 8;
        // Concurrency tests release hundreds of requests at once to prove what the database does
        // under contention; the booking limit would refuse most of them before they got there.
        // `tests/api/overload.rs` turns it on.
        config.booking_concurrency = 100_000;
        config.redis_key_prefix = format!("test:{id}:");
        config.kafka_topic_seats_expired = format!("test-{id}.seats.expired");
        config.kafka_topic_booking_events = format!("test-{id}.booking.events");
        config.kafka_topic_partitions = 1;
        config.bind_addr = "127.0.0.1:0".parse().expect("a valid address");
        // Tests drive the admitter, relay, sweeper and consumer by hand, unless they turn them on.
        config.queue_tick_ms = 0;
        config.outbox_relay_interval_ms = 0;
        config.expiry_sweep_interval_ms = 0;
        config.kafka_consumer_enabled = false;
        config.kafka_consumer_group = format!("test-{id}");
        customize(&mut config);

        let app = Application::build(config.clone())
            .await
            .expect("the application builds");
        let addr = app.local_addr();
        let context = app.state().app.clone();
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            config,
            admitter: concert_reservation::queue::admitter::Admitter::new(
                context.queue.clone(),
                context.db.clone(),
            )
            .with_period(std::time::Duration::from_secs(1)),
            context,
            client: reqwest::Client::new(),
            database,
            admin_url,
            shutdown: Some(shutdown),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Runs one GraphQL operation and returns the whole response body (`data` and `errors`).
    pub async fn graphql(&self, query: &str) -> Value {
        self.graphql_with(query, json!({})).await
    }

    pub async fn graphql_with(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self
            .post_json(&json!({ "query": query, "variables": variables }))
            .await;
        assert_eq!(status, 200, "GraphQL answered {status}: {body}");
        body
    }

    /// Runs one GraphQL operation as `user` (a signed access token in `Authorization`).
    pub async fn graphql_as(&self, user: i64, query: &str, variables: Value) -> Value {
        self.graphql_with_headers(
            query,
            variables,
            &[("authorization", format!("Bearer {}", self.token_for(user)))],
        )
        .await
    }

    pub async fn graphql_with_headers(
        &self,
        query: &str,
        variables: Value,
        headers: &[(&str, String)],
    ) -> Value {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.expect("the server answers");
        assert_eq!(response.status(), 200);
        response.json().await.expect("a JSON body")
    }

    /// A valid access token for `user`.
    pub fn token_for(&self, user: i64) -> String {
        self.token_with_ttl(user, 3600)
    }

    /// A valid access token for `user` with the organiser role.
    pub fn organiser_token_for(&self, user: i64) -> String {
        self.context.auth.issue_with_role(
            concert_reservation::ids::UserId(user),
            concert_reservation::auth::Role::Organiser,
            3600,
        )
    }

    /// Runs one GraphQL operation as organiser `user`.
    pub async fn graphql_as_organiser(&self, user: i64, query: &str, variables: Value) -> Value {
        self.graphql_with_headers(
            query,
            variables,
            &[(
                "authorization",
                format!("Bearer {}", self.organiser_token_for(user)),
            )],
        )
        .await
    }

    /// An access token for `user` that expires `ttl_seconds` from now (negative: expired).
    pub fn token_with_ttl(&self, user: i64, ttl_seconds: i64) -> String {
        self.context
            .auth
            .issue(concert_reservation::ids::UserId(user), ttl_seconds)
    }

    /// POSTs a JSON body to /graphql; returns the status and the parsed response.
    pub async fn post_json(&self, body: &Value) -> (u16, Value) {
        self.post_raw(body.to_string()).await
    }

    /// POSTs raw bytes as `application/json` to /graphql.
    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .client
            .post(self.url("/graphql"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a readable body");
        let body =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        (status, body)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("the server answers")
    }

    /// A direct connection to this test's database, outside the server's pool.
    pub async fn db(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.config.database_url)
            .await
            .expect("the test database accepts connections")
    }

    pub async fn seed(&self, options: SeedOptions) -> SeedSummary {
        seed::seed(&mut self.db().await, &options)
            .await
            .expect("seeding succeeds")
    }

    /// The waiting queue, for tests of its own rules (admission, leases, the guard).
    pub fn queue(&self) -> &concert_reservation::queue::Queue {
        &self.context.queue
    }

    /// The admitter of this server, ticked by hand (the one [`TestApp::admit`] ticks).
    pub fn seat_map_service(&self) -> &concert_reservation::booking::seat_map::SeatMap {
        &self.context.seat_map
    }

    /// A Redis key of this test's prefix.
    pub fn redis_key(&self, name: &str) -> String {
        self.context.redis.key(name)
    }

    pub fn admitter(&self) -> &concert_reservation::queue::admitter::Admitter {
        &self.admitter
    }

    /// Another admitter instance over the same queue: it competes for the concerts' leases.
    pub fn another_admitter(&self) -> concert_reservation::queue::admitter::Admitter {
        concert_reservation::queue::admitter::Admitter::new(
            self.context.queue.clone(),
            self.context.db.clone(),
        )
    }

    /// One admitter tick for `concert`: up to `max` waiting fans become ACTIVE.
    pub async fn admit(&self, concert: i64, max: u32) {
        self.admitter()
            .tick(concert_reservation::ids::ConcertId(concert), max)
            .await
            .expect("admitting");
    }

    /// Takes one connection of the server's Redis pool until the guard drops (to saturate it).
    pub async fn take_redis_connection(&self) -> concert_reservation::redis_store::RedisConn {
        self.context.redis.conn().await.expect("a Redis connection")
    }

    /// SQL statements the server's pool has run so far.
    pub fn statements_run(&self) -> u64 {
        self.context.db.statements_run()
    }

    /// Pool checkouts the server has made so far.
    pub fn checkouts(&self) -> u64 {
        self.context.db.checkouts()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let admin_url = self.admin_url.clone();
        let database = self.database.clone();
        let redis_url = self.config.redis_url.clone();
        let prefix = self.config.redis_key_prefix.clone();
        // Drop cannot await; clean up on a thread with its own runtime.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                if let Ok(mut conn) = AsyncPgConnection::establish(&admin_url).await {
                    let _ = conn
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                        .await;
                }
                let _ = delete_redis_prefix(&redis_url, &prefix).await;
                // The test's Kafka topics are left to the broker, which the scripts run in
                // memory: deleting them while other tests' clients refresh metadata crashed the
                // test process inside librdkafka (SIGSEGV in rd_kafka_metadata_cache_find, three
                // full runs of three on 2026-12-03; none of two since the deletion went).
            });
        });
        let _ = cleanup.join();
    }
}

async fn delete_redis_prefix(redis_url: &str, prefix: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await?;
    }
    Ok(())
}

/// `url` with its database name replaced.
pub fn database_url_for(url: &str, database: &str) -> String {
    let mut url = url::Url::parse(url).expect("DATABASE_URL is a URL");
    url.set_path(database);
    url.to_string()
}

/// Creates `database` as a copy of a template that has every migration applied. The template is
/// built once per set of migrations, under an advisory lock, by whichever test process comes first.
async fn create_test_database(admin_url: &str, base_url: &str, database: &str) {
    let template = template_name();
    let mut admin = AsyncPgConnection::establish(admin_url)
        .await
        .expect("PostgreSQL accepts connections (run scripts/services start)");
    admin
        .batch_execute("SELECT pg_advisory_lock(7267001)")
        .await
        .expect("advisory lock");
    if !database_exists(&mut admin, &template).await {
        let building = format!("{template}_building");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
            .await
            .expect("drop stale template");
        admin
            .batch_execute(&format!("CREATE DATABASE {building}"))
            .await
            .expect("create template");
        concert_reservation::db::run_migrations(&database_url_for(base_url, &building))
            .await
            .expect("migrations apply");
        // The migration connection is closing asynchronously; rename waits until it is gone.
        retry_while_busy(
            &mut admin,
            &format!("ALTER DATABASE {building} RENAME TO {template}"),
        )
        .await;
    }
    admin
        .batch_execute("SELECT pg_advisory_unlock(7267001)")
        .await
        .expect("advisory unlock");
    retry_while_busy(
        &mut admin,
        &format!("CREATE DATABASE {database} TEMPLATE {template}"),
    )
    .await;
}

async fn database_exists(conn: &mut AsyncPgConnection, name: &str) -> bool {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let count: Count =
        diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result(conn)
            .await
            .expect("pg_database is readable");
    count.n > 0
}

/// Runs a statement that fails while another session is connected to the database it names.
async fn retry_while_busy(conn: &mut AsyncPgConnection, sql: &str) {
    for attempt in 0.. {
        match conn.batch_execute(sql).await {
            Ok(()) => return,
            Err(err)
                if attempt < 100 && err.to_string().contains("being accessed by other users") =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("{sql}: {err}"),
        }
    }
}

/// One template per set of migrations and their contents: a new or edited migration gets a fresh
/// template (the binary embeds the same files; build.rs rebuilds it when they change).
fn template_name() -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let dir = files::root().join("migrations");
    let mut hasher = DefaultHasher::new();
    for file in files::walk(&dir) {
        file.strip_prefix(&dir)
            .expect("under migrations/")
            .hash(&mut hasher);
        std::fs::read(&file)
            .expect("a migration file is readable")
            .hash(&mut hasher);
    }
    format!("cr_template_{:016x}", hasher.finish())
}
