//! The outbox relay: claims unpublished outbox rows in id order with `FOR UPDATE SKIP LOCKED`
//! (several instances share the work, never the same row), publishes them with the idempotent
//! producer (key = schedule id, so one schedule's events stay in order), and marks them published
//! in the same transaction. A crash between publish and commit publishes again: at least once,
//! never lost. Consumers are idempotent.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rdkafka::producer::FutureRecord;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db::Database;
use crate::db::schema::outbox;
use crate::error::{AppError, AppResult};
use crate::events::kafka::Kafka;
use crate::events::outbox::Topics;
use crate::metrics as m;

/// How long one publish may wait for the broker before the pass gives up and retries later.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = outbox, check_for_backend(diesel::pg::Pg))]
struct OutboxRow {
    id: i64,
    event_type: String,
    partition_key: String,
    payload: serde_json::Value,
    created_at: DateTime<Utc>,
}

/// Consecutive failed passes after which the producer is replaced.
const FAILURES_BEFORE_RESET: u32 = 3;

/// What the relay uses: the database, the producer, the topic of each event, its pace.
#[derive(Clone)]
pub struct Relay {
    db: Database,
    kafka: Kafka,
    topics: Topics,
    batch: i64,
    period: Duration,
}

impl Relay {
    pub fn new(db: Database, kafka: Kafka, config: &Config) -> Self {
        Self {
            db,
            kafka,
            topics: Topics::from_config(config),
            batch: config.outbox_relay_batch,
            period: Duration::from_millis(config.outbox_relay_interval_ms),
        }
    }

    /// Relays until cancelled, every OUTBOX_RELAY_INTERVAL_MS (at once again while there is
    /// more).
    pub async fn run(self, cancel: CancellationToken) {
        let mut failures = 0;
        loop {
            let more = match self.relay_once().await {
                Ok(published) => {
                    failures = 0;
                    published as i64 >= self.batch
                }
                Err(err) => {
                    failures += 1;
                    if self.recover(failures >= FAILURES_BEFORE_RESET).await {
                        failures = 0;
                    }
                    tracing::warn!(error = %err, cause = ?std::error::Error::source(&err).map(ToString::to_string), "outbox relay pass failed");
                    false
                }
            };
            if let Err(err) = self.record_backlog().await {
                tracing::debug!(error = %err, "could not measure the outbox backlog");
            }
            let pause = if more { Duration::ZERO } else { self.period };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// After a failed pass: replaces a producer that is fatally broken (or has failed too
    /// often), and recreates topics a broker that came back empty has lost. True when the
    /// producer was replaced.
    async fn recover(&self, too_many_failures: bool) -> bool {
        let fatal = self.kafka.producer_fatal_error();
        let replace = fatal.is_some() || too_many_failures;
        if replace {
            tracing::warn!(?fatal, "replacing the Kafka producer");
            if let Err(reset) = self.kafka.reset_producer() {
                tracing::warn!(error = %reset, "could not create a new Kafka producer");
            }
        }
        if let Err(topics) = self.kafka.ensure_topics().await {
            tracing::debug!(error = %topics, "could not (re)create topics");
        }
        replace
    }

    /// One pass: publishes up to OUTBOX_RELAY_BATCH rows and marks them. Returns how many.
    pub async fn relay_once(&self) -> AppResult<usize> {
        let mut conn = self.db.conn().await?;
        conn.transaction(async |tx| self.publish_batch(tx).await)
            .await
    }

    async fn publish_batch(&self, conn: &mut AsyncPgConnection) -> AppResult<usize> {
        let rows: Vec<OutboxRow> = outbox::table
            .filter(outbox::published_at.is_null())
            .order(outbox::id)
            .limit(self.batch)
            .select(OutboxRow::as_select())
            .for_update()
            .skip_locked()
            .load(conn)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let started = Instant::now();
        let bodies: Vec<String> = rows.iter().map(|row| row.payload.to_string()).collect();
        // Enqueue all, then wait for all: the producer keeps per-partition order.
        let producer = self.kafka.producer();
        let sends = rows.iter().zip(&bodies).map(|(row, body)| {
            let record = FutureRecord::to(self.topics.for_event(&row.event_type))
                .key(&row.partition_key)
                .payload(body)
                .headers(
                    rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
                        key: "event_type",
                        value: Some(row.event_type.as_bytes()),
                    }),
                );
            producer.send(record, PUBLISH_TIMEOUT)
        });
        for result in futures::future::join_all(sends).await {
            if let Err((err, _)) = result {
                metrics::counter!(m::OUTBOX_PUBLISH_FAILURES_TOTAL).increment(1);
                // Nothing is marked: the whole batch is published again on a later pass.
                return Err(AppError::Unavailable(anyhow::anyhow!(
                    "publishing to Kafka failed: {err}"
                )));
            }
        }
        metrics::histogram!(m::OUTBOX_PUBLISH_DURATION_SECONDS)
            .record(started.elapsed().as_secs_f64());
        let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
        diesel::update(outbox::table.filter(outbox::id.eq_any(&ids)))
            .set(outbox::published_at.eq(diesel::dsl::now))
            .execute(conn)
            .await?;
        metrics::counter!(m::OUTBOX_PUBLISHED_TOTAL).increment(rows.len() as u64);
        tracing::debug!(count = rows.len(), oldest = %rows[0].created_at, "outbox rows published");
        Ok(rows.len())
    }

    /// Outbox backlog gauges: unpublished rows and the age of the oldest.
    async fn record_backlog(&self) -> AppResult<()> {
        let mut conn = self.db.conn().await?;
        let backlog = outbox::table
            .filter(outbox::published_at.is_null())
            .select((
                diesel::dsl::count_star(),
                diesel::dsl::min(outbox::created_at),
            ));
        let (count, oldest): (i64, Option<DateTime<Utc>>) =
            crate::db::one(backlog, &mut conn).await?;
        metrics::gauge!(m::OUTBOX_BACKLOG).set(count as f64);
        let age = oldest.map_or(0.0, |oldest| {
            (Utc::now() - oldest).num_milliseconds() as f64 / 1000.0
        });
        metrics::gauge!(m::OUTBOX_OLDEST_AGE_SECONDS).set(age);
        Ok(())
    }
}
