//! The `seats.expired` consumer (a Kafka consumer group): in batches of whatever has arrived, it
//! returns the holds' seats to sale (one UPDATE), drops the cached seat maps, tells `seatChanges`
//! subscribers and ends the fans' queue tokens. It stores offsets only after that work is done
//! (`enable.auto.offset.store=false`), so a crash re-delivers rather than loses; handling an event
//! twice changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use tokio_util::sync::CancellationToken;

use crate::booking::expiry;
use crate::booking::seat_map::{SeatChange, SeatMap};
use crate::config::Config;
use crate::db::Database;
use crate::db::enums::SeatStatus;
use crate::error::AppResult;
use crate::events::ExpiredHold;
use crate::ids::{ScheduleId, SeatId};
use crate::metrics as m;
use crate::queue::Queue;

/// Most events handled in one batch (one UPDATE, one seat-map change per schedule).
const MAX_BATCH: usize = 500;

/// Queue tokens ended at once after a batch (each is a Redis round trip through the shared pool).
const QUEUE_CALLS_IN_FLIGHT: usize = 16;

/// How often consumer lag is measured (one watermark request per assigned partition).
const LAG_PERIOD: Duration = Duration::from_secs(1);

/// What handling expired holds uses: the database, the seat map to tell, the queue whose tokens
/// end.
#[derive(Clone)]
pub struct ExpiryHandler {
    db: Database,
    seat_map: SeatMap,
    queue: Queue,
    /// Events this handler and its clones have handled (whatever they released).
    handled: Arc<AtomicU64>,
}

/// The Kafka consumer of `seats.expired`, in the configured group. Creating it does not need the
/// broker to be up.
pub fn create(config: &Config) -> anyhow::Result<StreamConsumer> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka_brokers)
        .set("group.id", &config.kafka_consumer_group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        // A fetch returns as soon as anything is there, but a broker may hold an empty fetch
        // this long: it bounds how late a lone event is picked up (librdkafka's default is 500).
        .set("fetch.wait.max.ms", "50")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .create()?;
    consumer.subscribe(&[config.kafka_topic_seats_expired.as_str()])?;
    Ok(consumer)
}

/// The consumer, closed on a thread of its own when its last owner lets go.
///
/// Dropping a group consumer closes it: it leaves the group and serves the last rebalance, which
/// can block forever when an assignment arrives while it closes (seen here with the broker
/// coming back just before shutdown; librdkafka#4041, rust-rdkafka#509). On a runtime thread
/// that would stall the runtime and its shutdown; on a thread of its own it cannot, and the
/// process still exits.
struct ClosedOffRuntime(Option<StreamConsumer>);

impl std::ops::Deref for ClosedOffRuntime {
    type Target = StreamConsumer;

    fn deref(&self) -> &StreamConsumer {
        self.0
            .as_ref()
            .expect("the consumer is present until dropped")
    }
}

impl Drop for ClosedOffRuntime {
    fn drop(&mut self) {
        if let Some(consumer) = self.0.take() {
            let closing = std::thread::Builder::new()
                .name("kafka-consumer-close".into())
                .spawn(move || drop(consumer));
            if let Err(err) = closing {
                tracing::warn!(error = %err, "no thread to close the Kafka consumer on; closing it here");
            }
        }
    }
}

/// Consumes until cancelled, then commits the stored offsets.
pub async fn run(handler: ExpiryHandler, consumer: StreamConsumer, cancel: CancellationToken) {
    let consumer = Arc::new(ClosedOffRuntime(Some(consumer)));
    tokio::spawn(measure_lag(consumer.clone(), cancel.clone()));
    loop {
        let first = tokio::select! {
            () = cancel.cancelled() => break,
            message = consumer.recv() => message,
        };
        let first = match first {
            Ok(message) => message,
            Err(err) => {
                tracing::warn!(error = %err, "Kafka consumer error");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        // Whatever else has already arrived joins the batch; nothing waits for more.
        let mut messages = vec![first];
        while messages.len() < MAX_BATCH {
            match tokio::time::timeout(Duration::ZERO, consumer.recv()).await {
                Ok(Ok(message)) => messages.push(message),
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "Kafka consumer error");
                    break;
                }
                Err(_) => break,
            }
        }
        let holds: Vec<ExpiredHold> = messages.iter().filter_map(parse).collect();
        // Retry until the work is done: moving on would skip these events.
        while let Err(err) = handler.handle_batch(&holds).await {
            tracing::warn!(error = %err, events = holds.len(), "releasing seats failed; retrying");
            tokio::select! {
                () = cancel.cancelled() => return commit(&consumer),
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        for message in &messages {
            if let Err(err) = consumer.store_offset_from_message(message) {
                tracing::warn!(error = %err, "could not store the consumer offset");
            }
        }
    }
    commit(&consumer);
}

fn commit(consumer: &ClosedOffRuntime) {
    if let Err(err) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(error = %err, "no offsets committed on shutdown");
    }
}

/// The event in a message; a malformed one is counted, logged and skipped.
fn parse(message: &BorrowedMessage<'_>) -> Option<ExpiredHold> {
    let payload = message.payload()?;
    match serde_json::from_slice::<ExpiredHold>(payload) {
        Ok(hold) => Some(hold),
        Err(err) => {
            metrics::counter!(m::CONSUMER_EVENTS_TOTAL, "outcome" => "malformed").increment(1);
            tracing::error!(error = %err, offset = message.offset(), "skipping a malformed seats.expired event");
            None
        }
    }
}

impl ExpiryHandler {
    pub fn new(db: Database, seat_map: SeatMap, queue: Queue) -> Self {
        Self {
            db,
            seat_map,
            queue,
            handled: Arc::default(),
        }
    }

    /// How many events this handler (and its clones) handled since it was made: what one
    /// consumer did, where `consumer_events_total` sums every consumer of the process.
    pub fn events_handled(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }

    /// Handles one event: releases what is still held by that hold, then tells everyone. Returns
    /// the number of seats released (0 when the event was handled before).
    pub async fn handle(&self, hold: &ExpiredHold) -> AppResult<usize> {
        self.handle_batch(std::slice::from_ref(hold)).await
    }

    /// Handles a batch of events: one UPDATE releases every seat still held by those holds, one
    /// seat-map change per schedule tells subscribers, and each fan who lost seats has their queue
    /// token ended. Returns the number of seats released.
    pub async fn handle_batch(&self, holds: &[ExpiredHold]) -> AppResult<usize> {
        if holds.is_empty() {
            return Ok(0);
        }
        let seat_ids: Vec<SeatId> = holds
            .iter()
            .flat_map(|hold| hold.seat_ids.clone())
            .collect();
        let released: HashSet<SeatId> = {
            let mut conn = self.db.conn().await?;
            expiry::release(&mut conn, &seat_ids)
                .await?
                .into_iter()
                .collect()
        };
        let mut by_schedule: BTreeMap<ScheduleId, BTreeSet<SeatId>> = BTreeMap::new();
        let mut losers = Vec::new();
        for hold in holds {
            let mine: Vec<SeatId> = hold
                .seat_ids
                .iter()
                .filter(|seat| released.contains(seat))
                .copied()
                .collect();
            let outcome = if mine.is_empty() {
                "nothing_left"
            } else {
                "released"
            };
            metrics::counter!(m::CONSUMER_EVENTS_TOTAL, "outcome" => outcome).increment(1);
            self.handled.fetch_add(1, Ordering::Relaxed);
            if mine.is_empty() {
                continue;
            }
            let latency = (Utc::now() - hold.expires_at).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!(m::EXPIRY_RELEASE_LATENCY_SECONDS).record(latency);
            by_schedule
                .entry(hold.schedule_id)
                .or_default()
                .extend(mine);
            losers.push(hold);
        }
        metrics::counter!(m::SEATS_RELEASED_TOTAL, "by" => "consumer")
            .increment(released.len() as u64);
        for (schedule_id, seat_ids) in by_schedule {
            let change = SeatChange {
                schedule_id,
                seat_ids: seat_ids.into_iter().collect(),
                status: SeatStatus::Available,
            };
            self.seat_map.changed(change).await;
        }
        futures::stream::iter(losers)
        .for_each_concurrent(QUEUE_CALLS_IN_FLIGHT, async |hold| {
            if let Err(err) = self
                .queue
                .finish_for(hold.concert_id, hold.user_id)
                .await
            {
                tracing::warn!(error = %err, "could not end the queue token of an expired hold");
            }
        })
        .await;
        Ok(released.len())
    }
}

/// Measures the lag every [`LAG_PERIOD`] until cancelled, also while no message arrives (so the
/// gauge falls back to 0 once the backlog is drained).
async fn measure_lag(consumer: Arc<ClosedOffRuntime>, cancel: CancellationToken) {
    let mut every = tokio::time::interval(LAG_PERIOD);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = every.tick() => record_lag(consumer.clone()).await,
        }
    }
}

/// Consumer lag: messages between this group's position and the end of each assigned partition.
async fn record_lag(consumer: Arc<ClosedOffRuntime>) {
    let lag = tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
        let mut total = 0;
        for element in consumer.position()?.elements() {
            let (_, high) = consumer.fetch_watermarks(
                element.topic(),
                element.partition(),
                Duration::from_secs(2),
            )?;
            let position = element
                .offset()
                .to_raw()
                .filter(|offset| *offset >= 0)
                .unwrap_or(0);
            total += (high - position).max(0);
        }
        Ok(total)
    })
    .await;
    match lag {
        Ok(Ok(lag)) => metrics::gauge!(m::CONSUMER_LAG).set(lag as f64),
        Ok(Err(err)) => tracing::debug!(error = %err, "could not measure consumer lag"),
        Err(err) => tracing::debug!(error = %err, "lag task failed"),
    }
}
