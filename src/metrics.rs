//! Metric names (one place, so dashboards and code agree) and the Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const GRAPHQL_REQUESTS_TOTAL: &str = "graphql_requests_total";
pub const GRAPHQL_REQUEST_DURATION_SECONDS: &str = "graphql_request_duration_seconds";
pub const GRAPHQL_ERRORS_TOTAL: &str = "graphql_errors_total";
pub const DB_STATEMENTS_TOTAL: &str = "db_statements_total";
pub const DB_POOL_WAIT_SECONDS: &str = "db_pool_wait_seconds";
pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";
pub const DB_POOL_IDLE: &str = "db_pool_idle_connections";
pub const DB_POOL_MAX: &str = "db_pool_max_connections";
pub const REDIS_POOL_CONNECTIONS: &str = "redis_pool_connections";
pub const REDIS_POOL_IDLE: &str = "redis_pool_idle_connections";
pub const QUEUE_WAITING: &str = "queue_waiting";
pub const QUEUE_ACTIVE: &str = "queue_active";
pub const QUEUE_ENTRIES_TOTAL: &str = "queue_entries_total";
pub const QUEUE_ADMISSIONS_TOTAL: &str = "queue_admissions_total";
pub const QUEUE_ABANDONED_TOTAL: &str = "queue_abandoned_total";
pub const QUEUE_EXPIRED_TOTAL: &str = "queue_expired_total";
pub const QUEUE_WAIT_SECONDS: &str = "queue_wait_seconds";
pub const QUEUE_ADMISSION_RATE: &str = "queue_admission_rate_per_second";
pub const QUEUE_TICK_FAILURES_TOTAL: &str = "queue_tick_failures_total";
pub const QUEUE_SUBSCRIBERS: &str = "queue_subscribers";
pub const HOLDS_TOTAL: &str = "holds_total";
pub const HOLD_DURATION_SECONDS: &str = "hold_duration_seconds";
pub const SKIP_LOCKED_MISSES_TOTAL: &str = "skip_locked_misses_total";
pub const DB_RETRIES_TOTAL: &str = "db_retries_total";
pub const PAYMENTS_TOTAL: &str = "payments_total";
pub const PAYMENT_DURATION_SECONDS: &str = "payment_duration_seconds";
pub const POINT_CHARGES_TOTAL: &str = "point_charges_total";
pub const CANCELLATIONS_TOTAL: &str = "cancellations_total";
pub const OUTBOX_BACKLOG: &str = "outbox_backlog";
pub const OUTBOX_OLDEST_AGE_SECONDS: &str = "outbox_oldest_age_seconds";
pub const OUTBOX_PUBLISHED_TOTAL: &str = "outbox_published_total";
pub const OUTBOX_PUBLISH_FAILURES_TOTAL: &str = "outbox_publish_failures_total";
pub const OUTBOX_PUBLISH_DURATION_SECONDS: &str = "outbox_publish_duration_seconds";
pub const HOLDS_EXPIRED_TOTAL: &str = "holds_expired_total";
pub const SEATS_RELEASED_TOTAL: &str = "seats_released_total";
pub const CONSUMER_EVENTS_TOTAL: &str = "consumer_events_total";
pub const CONSUMER_LAG: &str = "consumer_lag";
pub const EXPIRY_RELEASE_LATENCY_SECONDS: &str = "expiry_release_latency_seconds";

/// Latency buckets in seconds: fine below 50 ms where a healthy request lands, coarse up to the
/// 10 s request timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Waiting in line takes seconds to many minutes.
/// From a hold's expiry to its seats being back on sale: seconds, up to the backstop's minutes.
const EXPIRY_BUCKETS: &[f64] = &[
    0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];

const QUEUE_WAIT_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once per process (tests build many apps in one process) and
/// returns the handle `/metrics` renders. Every `*_seconds` metric is a histogram, not a summary.
pub fn install_recorder() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(QUEUE_WAIT_SECONDS.into()),
                    QUEUE_WAIT_BUCKETS,
                )
                .expect("queue wait buckets are a non-empty constant")
                .set_buckets_for_metric(
                    Matcher::Full(EXPIRY_RELEASE_LATENCY_SECONDS.into()),
                    EXPIRY_BUCKETS,
                )
                .expect("expiry buckets are a non-empty constant")
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("latency buckets are a non-empty constant")
                .install_recorder()
                .expect("the metrics recorder is installed once, guarded by the OnceLock")
        })
        .clone()
}
