//! The `seats.expired` consumer (a Kafka consumer group): for each event it returns the hold's
//! seats to sale, drops the cached seat map, tells `seatChanges` subscribers and ends the fan's
//! queue token. It stores an offset only after that work is done
//! (`enable.auto.offset.store=false`), so a crash re-delivers rather than loses; handling an event
//! twice changes nothing.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use tokio_util::sync::CancellationToken;

use crate::booking::expiry::{self, ExpiredHold};
use crate::booking::seat_map::SeatChange;
use crate::db::enums::SeatStatus;
use crate::error::AppResult;
use crate::metrics as m;
use crate::startup::Services;

/// How often consumer lag is measured (one watermark request per assigned partition).
const LAG_PERIOD: Duration = Duration::from_secs(1);

pub fn create(services: &Services) -> anyhow::Result<StreamConsumer> {
    let config = &services.config;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka_brokers)
        .set("group.id", &config.kafka_consumer_group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
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
pub async fn run(services: Services, consumer: StreamConsumer, cancel: CancellationToken) {
    let consumer = Arc::new(ClosedOffRuntime(Some(consumer)));
    tokio::spawn(measure_lag(consumer.clone(), cancel.clone()));
    loop {
        let message = tokio::select! {
            () = cancel.cancelled() => break,
            message = consumer.recv() => message,
        };
        match message {
            Ok(message) => {
                if let Some(payload) = message.payload() {
                    match serde_json::from_slice::<ExpiredHold>(payload) {
                        Ok(hold) => {
                            // Retry until the work is done: moving on would skip this event.
                            while let Err(err) = handle(&services, &hold).await {
                                tracing::warn!(error = %err, reservation = %hold.reservation_id, "releasing seats failed; retrying");
                                tokio::select! {
                                    () = cancel.cancelled() => return commit(&consumer),
                                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                                }
                            }
                        }
                        Err(err) => {
                            metrics::counter!(m::CONSUMER_EVENTS_TOTAL, "outcome" => "malformed")
                                .increment(1);
                            tracing::error!(error = %err, offset = message.offset(), "skipping a malformed seats.expired event");
                        }
                    }
                }
                if let Err(err) = consumer.store_offset_from_message(&message) {
                    tracing::warn!(error = %err, "could not store the consumer offset");
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "Kafka consumer error");
                tokio::time::sleep(Duration::from_millis(500)).await;
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

/// Handles one event: releases what is still held by that hold, then tells everyone. Returns the
/// number of seats released (0 when the event was handled before).
pub async fn handle(services: &Services, hold: &ExpiredHold) -> AppResult<usize> {
    let released = {
        let mut conn = services.db.conn().await?;
        expiry::release(&mut conn, hold).await?
    };
    let outcome = if released.is_empty() {
        "nothing_left"
    } else {
        "released"
    };
    metrics::counter!(m::CONSUMER_EVENTS_TOTAL, "outcome" => outcome).increment(1);
    if !released.is_empty() {
        metrics::counter!(m::SEATS_RELEASED_TOTAL, "by" => "consumer")
            .increment(released.len() as u64);
        let latency = (Utc::now() - hold.expires_at).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::histogram!(m::EXPIRY_RELEASE_LATENCY_SECONDS).record(latency);
        let count = released.len();
        let change = SeatChange {
            schedule_id: hold.schedule_id,
            seat_ids: released,
            status: SeatStatus::Available,
        };
        services.seat_map.changed(change).await;
        if let Err(err) = services
            .queue
            .finish_for(hold.concert_id, hold.user_id)
            .await
        {
            tracing::warn!(error = %err, "could not end the queue token of an expired hold");
        }
        return Ok(count);
    }
    Ok(0)
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
