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

use crate::booking::expiry::SEATS_EXPIRED;
use crate::db::schema::outbox;
use crate::error::{AppError, AppResult};
use crate::metrics as m;
use crate::startup::Services;

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

/// The topic an event type goes to.
fn topic_for<'a>(services: &'a Services, event_type: &str) -> &'a str {
    if event_type == SEATS_EXPIRED {
        &services.config.kafka_topic_seats_expired
    } else {
        &services.config.kafka_topic_booking_events
    }
}

/// Relays until cancelled, every OUTBOX_RELAY_INTERVAL_MS (at once again while there is more).
/// Consecutive failed passes after which the producer is replaced.
const FAILURES_BEFORE_RESET: u32 = 3;

pub async fn run(services: Services, cancel: CancellationToken) {
    let period = Duration::from_millis(services.config.outbox_relay_interval_ms);
    let mut failures = 0;
    loop {
        let more = match relay_once(&services).await {
            Ok(published) => {
                failures = 0;
                published as i64 >= services.config.outbox_relay_batch
            }
            Err(err) => {
                failures += 1;
                let fatal = services.kafka.producer_fatal_error();
                if fatal.is_some() || failures >= FAILURES_BEFORE_RESET {
                    tracing::warn!(?fatal, failures, "replacing the Kafka producer");
                    if let Err(reset) = services.kafka.reset_producer() {
                        tracing::warn!(error = %reset, "could not create a new Kafka producer");
                    }
                    failures = 0;
                }
                // A broker that came back empty (or a new cluster) has lost the topics.
                if let Err(topics) = services.kafka.ensure_topics().await {
                    tracing::debug!(error = %topics, "could not (re)create topics");
                }
                tracing::warn!(error = %err, cause = ?std::error::Error::source(&err).map(ToString::to_string), "outbox relay pass failed");
                false
            }
        };
        if let Err(err) = record_backlog(&services).await {
            tracing::debug!(error = %err, "could not measure the outbox backlog");
        }
        let pause = if more { Duration::ZERO } else { period };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// One pass: publishes up to OUTBOX_RELAY_BATCH rows and marks them. Returns how many.
pub async fn relay_once(services: &Services) -> AppResult<usize> {
    let mut conn = services.db.conn().await?;
    conn.transaction(async |tx| publish_batch(services, tx).await)
        .await
}

async fn publish_batch(services: &Services, conn: &mut AsyncPgConnection) -> AppResult<usize> {
    let rows: Vec<OutboxRow> = outbox::table
        .filter(outbox::published_at.is_null())
        .order(outbox::id)
        .limit(services.config.outbox_relay_batch)
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
    let producer = services.kafka.producer();
    let sends = rows.iter().zip(&bodies).map(|(row, body)| {
        let record = FutureRecord::to(topic_for(services, &row.event_type))
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
    metrics::histogram!(m::OUTBOX_PUBLISH_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
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
async fn record_backlog(services: &Services) -> AppResult<()> {
    let mut conn = services.db.conn().await?;
    let (count, oldest): (i64, Option<DateTime<Utc>>) = outbox::table
        .filter(outbox::published_at.is_null())
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(outbox::created_at),
        ))
        .first(&mut conn)
        .await?;
    metrics::gauge!(m::OUTBOX_BACKLOG).set(count as f64);
    let age = oldest.map_or(0.0, |oldest| {
        (Utc::now() - oldest).num_milliseconds() as f64 / 1000.0
    });
    metrics::gauge!(m::OUTBOX_OLDEST_AGE_SECONDS).set(age);
    Ok(())
}
