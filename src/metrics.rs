//! Metric names (one place, so dashboards and code agree), their descriptions, the Prometheus
//! recorder and the process metrics (CPU, memory, file descriptors, threads) of this server.

use std::sync::{LazyLock, OnceLock};

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
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
pub const QUEUE_ADMISSION_TARGET_RATE: &str = "queue_admission_target_rate_per_second";
pub const QUEUE_IDLED_TOTAL: &str = "queue_idled_total";
pub const QUEUE_OPENINGS_TOTAL: &str = "queue_openings_total";
pub const QUEUE_PREQUEUE: &str = "queue_prequeue";
pub const QUEUE_SOLD_OUT: &str = "queue_sold_out";
pub const QUEUE_TICK_FAILURES_TOTAL: &str = "queue_tick_failures_total";
pub const QUEUE_ADMITTER_FAILING: &str = "queue_admitter_failing";
pub const QUEUE_SUBSCRIBERS: &str = "queue_subscribers";
pub const HOLDS_TOTAL: &str = "holds_total";
pub const HOLD_DURATION_SECONDS: &str = "hold_duration_seconds";
pub const SKIP_LOCKED_MISSES_TOTAL: &str = "skip_locked_misses_total";
pub const DB_RETRIES_TOTAL: &str = "db_retries_total";
pub const BOOKING_LIMIT_REFUSALS_TOTAL: &str = "booking_limit_refusals_total";
pub const QUEUE_LIMIT_REFUSALS_TOTAL: &str = "queue_limit_refusals_total";
pub const TASK_SCHEDULED_DELAY_SUM: &str = "task_scheduled_delay_seconds_sum";
pub const TASK_SCHEDULED_DELAY_COUNT: &str = "task_scheduled_delay_seconds_count";
pub const TASK_FIRST_POLL_DELAY_SUM: &str = "task_first_poll_delay_seconds_sum";
pub const TASK_FIRST_POLL_DELAY_COUNT: &str = "task_first_poll_delay_seconds_count";
pub const TASK_POLL_SUM: &str = "task_poll_seconds_sum";
pub const TASK_POLL_COUNT: &str = "task_poll_seconds_count";
pub const POOL_SATURATED_REFUSALS_TOTAL: &str = "pool_saturated_refusals_total";
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
pub const RETENTION_DELETED_TOTAL: &str = "retention_deleted_total";
pub const SEATS_RELEASED_TOTAL: &str = "seats_released_total";
pub const CONSUMER_EVENTS_TOTAL: &str = "consumer_events_total";
pub const CONSUMER_LAG: &str = "consumer_lag";
pub const EXPIRY_RELEASE_LATENCY_SECONDS: &str = "expiry_release_latency_seconds";

/// Latency buckets in seconds: fine below 50 ms where a healthy request lands, coarse up to the
/// 10 s request timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// From a hold's expiry to its seats being back on sale: seconds, up to the backstop's minutes.
const EXPIRY_BUCKETS: &[f64] = &[
    0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];

/// Waiting in line takes seconds to many minutes.
const QUEUE_WAIT_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`,
/// `process_threads`, ... in the names Prometheus' own clients use.
static PROCESS: LazyLock<metrics_process::Collector> =
    LazyLock::new(metrics_process::Collector::default);

/// Installs the global recorder once per process (tests build many apps in one process) and
/// returns the handle `/metrics` renders. Every `*_seconds` metric is a histogram, not a summary.
pub fn install_recorder() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
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
                .expect("the metrics recorder is installed once, guarded by the OnceLock");
            describe_all();
            register_label_free();
            PROCESS.describe();
            record_process_metrics();
            handle
        })
        .clone()
}

/// Refreshes the process metrics; `/metrics` calls it before rendering, as it does for the pools.
pub fn record_process_metrics() {
    PROCESS.collect();
    record_task_metrics();
}

/// The HTTP connection tasks (one per client connection: reading requests, writing answers).
pub static CONNECTION_TASKS: LazyLock<tokio_metrics::TaskMonitor> =
    LazyLock::new(tokio_metrics::TaskMonitor::new);

/// The tasks that execute GraphQL requests (one per request).
pub static GRAPHQL_TASKS: LazyLock<tokio_metrics::TaskMonitor> =
    LazyLock::new(tokio_metrics::TaskMonitor::new);

/// How long woken tasks waited for a worker thread, and how long their polls ran, per kind of
/// task: the server's own queueing when the CPU is short, which no request timer sees (a request
/// timer starts when its task first runs). Sums and counts since start, as gauges; a mean over a
/// window is the change of the sum over the change of the count.
fn record_task_metrics() {
    for (task, monitor) in [
        ("connection", &*CONNECTION_TASKS),
        ("graphql", &*GRAPHQL_TASKS),
    ] {
        let totals = monitor.cumulative();
        let pairs = [
            (
                TASK_SCHEDULED_DELAY_SUM,
                TASK_SCHEDULED_DELAY_COUNT,
                totals.total_scheduled_duration,
                totals.total_scheduled_count,
            ),
            (
                TASK_FIRST_POLL_DELAY_SUM,
                TASK_FIRST_POLL_DELAY_COUNT,
                totals.total_first_poll_delay,
                totals.first_poll_count,
            ),
            (
                TASK_POLL_SUM,
                TASK_POLL_COUNT,
                totals.total_poll_duration,
                totals.total_poll_count,
            ),
        ];
        for (sum, count, total, n) in pairs {
            metrics::gauge!(sum, "task" => task).set(total.as_secs_f64());
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!(count, "task" => task).set(n as f64);
        }
    }
}

/// `# HELP` lines for every metric family (the exporter prints them once a series exists).
fn describe_all() {
    describe_counter!(
        GRAPHQL_REQUESTS_TOTAL,
        "GraphQL operations by `operation` (root fields) and `outcome` (ok, error)."
    );
    describe_histogram!(
        GRAPHQL_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time to execute one GraphQL operation, by `operation`."
    );
    describe_counter!(
        GRAPHQL_ERRORS_TOTAL,
        "GraphQL errors by `operation` and `code` (the error's extensions.code)."
    );
    describe_counter!(DB_STATEMENTS_TOTAL, "SQL statements run through the pool.");
    describe_histogram!(
        DB_POOL_WAIT_SECONDS,
        Unit::Seconds,
        "Time to get a PostgreSQL connection from the pool."
    );
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        "PostgreSQL connections open in the pool (refreshed on scrape)."
    );
    describe_gauge!(DB_POOL_IDLE, "Idle PostgreSQL connections in the pool.");
    describe_gauge!(DB_POOL_MAX, "Size limit of the PostgreSQL pool.");
    describe_gauge!(
        REDIS_POOL_CONNECTIONS,
        "Redis connections open in the pool (refreshed on scrape)."
    );
    describe_gauge!(REDIS_POOL_IDLE, "Idle Redis connections in the pool.");
    describe_gauge!(
        QUEUE_WAITING,
        "WAITING queue tokens per `concert`, at the last admitter tick."
    );
    describe_gauge!(
        QUEUE_ACTIVE,
        "ACTIVE queue tokens per `concert`, at the last admitter tick."
    );
    describe_counter!(QUEUE_ENTRIES_TOTAL, "Queue entries per `concert`.");
    describe_counter!(
        QUEUE_ADMISSIONS_TOTAL,
        "WAITING tokens made ACTIVE per `concert`."
    );
    describe_counter!(
        QUEUE_ABANDONED_TOTAL,
        "WAITING tokens dropped per `concert`: the holder stopped polling and subscribing."
    );
    describe_counter!(
        QUEUE_EXPIRED_TOTAL,
        "ACTIVE tokens per `concert` whose time ran out."
    );
    describe_histogram!(
        QUEUE_WAIT_SECONDS,
        Unit::Seconds,
        "Time from entering the queue to ACTIVE, per `concert`."
    );
    describe_gauge!(
        QUEUE_ADMISSION_RATE,
        "Observed admissions per second per `concert` (the ETA's divisor)."
    );
    describe_gauge!(
        QUEUE_ADMISSION_TARGET_RATE,
        "The admission rate per `concert` adaptive admission aims at (at most the concert's admit_per_second)."
    );
    describe_counter!(
        QUEUE_IDLED_TOTAL,
        "ACTIVE tokens per `concert` that lost their slot for holding nothing for QUEUE_ACTIVE_IDLE_SECONDS."
    );
    describe_counter!(
        QUEUE_OPENINGS_TOTAL,
        "Scheduled openings per `concert`: its pre-queue shuffled into the line (once per opening)."
    );
    describe_gauge!(
        QUEUE_PREQUEUE,
        "Fans per `concert` in its pre-queue, waiting for the opening's shuffle."
    );
    describe_gauge!(
        QUEUE_SOLD_OUT,
        "1 while a `concert` has no seat left to sell (its queue admits nobody), else 0."
    );
    describe_counter!(
        QUEUE_TICK_FAILURES_TOTAL,
        "Admitter ticks that failed (Redis unreachable, script error)."
    );
    describe_gauge!(
        QUEUE_ADMITTER_FAILING,
        "1 while this instance's last admission tick failed (Redis unreachable, say), 0 once one succeeds."
    );
    describe_gauge!(
        QUEUE_SUBSCRIBERS,
        "queueStatus subscriptions open on this instance."
    );
    describe_counter!(
        HOLDS_TOTAL,
        "Hold attempts by `kind` (chosen, best_available) and `outcome` (held or an error code)."
    );
    describe_histogram!(
        HOLD_DURATION_SECONDS,
        Unit::Seconds,
        "Time of one hold attempt (lock, insert, commit), by `kind`."
    );
    describe_counter!(
        SKIP_LOCKED_MISSES_TOTAL,
        "Holds refused because a requested seat was locked by another request (SKIP LOCKED)."
    );
    describe_counter!(
        BOOKING_LIMIT_REFUSALS_TOTAL,
        "Holds, payments, cancellations and charges refused at once with BUSY because the booking limit (BOOKING_CONCURRENCY) was full."
    );
    describe_counter!(
        QUEUE_LIMIT_REFUSALS_TOTAL,
        "enterQueue and queueStatus calls refused at once with BUSY because the waiting room's limit (QUEUE_CONCURRENCY) was full."
    );
    describe_gauge!(
        TASK_SCHEDULED_DELAY_SUM,
        Unit::Seconds,
        "Time woken tasks of a `task` kind (connection, graphql) waited for a worker thread, since start."
    );
    describe_gauge!(
        TASK_SCHEDULED_DELAY_COUNT,
        "Times tasks of a `task` kind were woken, since start."
    );
    describe_gauge!(
        TASK_FIRST_POLL_DELAY_SUM,
        Unit::Seconds,
        "Time tasks of a `task` kind waited from spawn to their first poll, since start."
    );
    describe_gauge!(
        TASK_FIRST_POLL_DELAY_COUNT,
        "Tasks of a `task` kind polled for the first time, since start."
    );
    describe_gauge!(
        TASK_POLL_SUM,
        Unit::Seconds,
        "Time spent polling tasks of a `task` kind (their CPU on a worker thread), since start."
    );
    describe_gauge!(
        TASK_POLL_COUNT,
        "Polls of tasks of a `task` kind, since start."
    );
    describe_counter!(
        POOL_SATURATED_REFUSALS_TOTAL,
        "Requests answered BUSY because every connection of a `pool` (redis) was in use for the whole checkout timeout."
    );
    describe_counter!(
        DB_RETRIES_TOTAL,
        "Transactions retried after a deadlock, serialization failure or lock timeout."
    );
    describe_counter!(
        PAYMENTS_TOTAL,
        "Payment attempts by `outcome` (paid or an error code)."
    );
    describe_histogram!(
        PAYMENT_DURATION_SECONDS,
        Unit::Seconds,
        "Time of one payment attempt."
    );
    describe_counter!(POINT_CHARGES_TOTAL, "Point charges (top-ups) applied.");
    describe_counter!(
        CANCELLATIONS_TOTAL,
        "Cancellations by `outcome` (cancelled or an error code)."
    );
    describe_gauge!(
        OUTBOX_BACKLOG,
        "Unpublished outbox rows, measured by the relay (0 until its first pass)."
    );
    describe_gauge!(
        OUTBOX_OLDEST_AGE_SECONDS,
        Unit::Seconds,
        "Age of the oldest unpublished outbox row (0 when none, or before the relay's first pass)."
    );
    describe_counter!(OUTBOX_PUBLISHED_TOTAL, "Outbox rows published to Kafka.");
    describe_counter!(
        OUTBOX_PUBLISH_FAILURES_TOTAL,
        "Relay passes whose publish to Kafka failed (the batch is published again)."
    );
    describe_histogram!(
        OUTBOX_PUBLISH_DURATION_SECONDS,
        Unit::Seconds,
        "Time to publish one relay batch until the broker acknowledged it."
    );
    describe_counter!(HOLDS_EXPIRED_TOTAL, "Holds the sweeper marked EXPIRED.");
    describe_counter!(
        RETENTION_DELETED_TOTAL,
        "Rows the retention pass deleted, by table (published outbox rows, idempotency keys)."
    );
    describe_counter!(
        SEATS_RELEASED_TOTAL,
        "Seats put back on sale after a hold expired, `by` consumer or backstop."
    );
    describe_counter!(
        CONSUMER_EVENTS_TOTAL,
        "seats.expired events handled, by `outcome` (released, nothing_left, malformed)."
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Messages behind the end of the partitions this instance consumes (0 until measured)."
    );
    describe_histogram!(
        EXPIRY_RELEASE_LATENCY_SECONDS,
        Unit::Seconds,
        "From a hold's expiry to its seats being back on sale through the consumer."
    );
}

/// Series without labels exist from start-up, at zero, as Prometheus advises: a dashboard shows
/// 0 rather than "no data" before the first event, and `rate()` sees the first increment.
/// Labelled series (per operation, concert, outcome, ...) appear with their first event.
/// Pool gauges are left out: they are set on every scrape.
fn register_label_free() {
    for name in [
        DB_STATEMENTS_TOTAL,
        QUEUE_TICK_FAILURES_TOTAL,
        SKIP_LOCKED_MISSES_TOTAL,
        DB_RETRIES_TOTAL,
        BOOKING_LIMIT_REFUSALS_TOTAL,
        QUEUE_LIMIT_REFUSALS_TOTAL,
        POINT_CHARGES_TOTAL,
        OUTBOX_PUBLISHED_TOTAL,
        OUTBOX_PUBLISH_FAILURES_TOTAL,
        HOLDS_EXPIRED_TOTAL,
    ] {
        metrics::counter!(name).increment(0);
    }
    for name in [
        QUEUE_SUBSCRIBERS,
        QUEUE_ADMITTER_FAILING,
        OUTBOX_BACKLOG,
        OUTBOX_OLDEST_AGE_SECONDS,
        CONSUMER_LAG,
    ] {
        metrics::gauge!(name).increment(0.0);
    }
    for name in [
        DB_POOL_WAIT_SECONDS,
        PAYMENT_DURATION_SECONDS,
        OUTBOX_PUBLISH_DURATION_SECONDS,
        EXPIRY_RELEASE_LATENCY_SECONDS,
    ] {
        // Registering is enough: the exporter renders a histogram with no samples at zero.
        let _ = metrics::histogram!(name);
    }
}
