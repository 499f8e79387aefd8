//! The background workers, driven by hand: tests spawn servers with them off (unless a test turns
//! them on), then run one step of a worker where the test needs it.

use concert_reservation::booking::expiry::consumer::{self, ExpiryHandler};
use concert_reservation::booking::expiry::sweeper::Sweeper;
use concert_reservation::events::relay::Relay;
use concert_reservation::retention::{Pruned, Retention};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::TestApp;

/// The payload of a `seats.expired` event: a hold that ran out and the seats it had.
pub use concert_reservation::events::ExpiredHold;

impl TestApp {
    /// One sweep: expires past-due holds; returns (holds expired, seats freed by the backstop).
    pub async fn sweep_expired_holds(&self) -> (usize, usize) {
        Sweeper::new(
            self.context.db.clone(),
            self.context.seat_map.clone(),
            self.context.queue.clone(),
            &self.config,
        )
        .sweep_once()
        .await
        .expect("the sweep runs")
    }

    /// One relay batch: publishes unpublished outbox rows; returns how many.
    pub async fn relay_once(&self) -> usize {
        Relay::new(
            self.context.db.clone(),
            self.context.kafka.clone(),
            &self.config,
        )
        .relay_once()
        .await
        .expect("the relay runs")
    }

    /// One retention pass: deletes published outbox rows and idempotency keys past their age.
    pub async fn prune_retention(&self) -> Pruned {
        Retention::new(self.context.db.clone(), &self.config)
            .prune_once()
            .await
            .expect("the retention pass runs")
    }

    /// Relays until the outbox is empty.
    pub async fn relay_outbox(&self) {
        while self.relay_once().await > 0 {}
    }

    /// The consumer's handling of one `seats.expired` event; returns the seats it freed.
    pub async fn release_expired(&self, hold: &ExpiredHold) -> usize {
        self.expiry_handler()
            .handle(hold)
            .await
            .expect("the event is handled")
    }

    /// The consumer's handling of a batch of `seats.expired` events; returns the seats freed.
    pub async fn release_expired_batch(&self, holds: &[ExpiredHold]) -> usize {
        self.expiry_handler()
            .handle_batch(holds)
            .await
            .expect("the events are handled")
    }

    /// Runs a Kafka consumer in the app's group until `cancel`, handling events with `handler`
    /// (a clone of which tells the test what it handled).
    pub fn spawn_consumer_with(
        &self,
        handler: ExpiryHandler,
        cancel: CancellationToken,
    ) -> JoinHandle<()> {
        let consumer = consumer::create(&self.config).expect("the consumer is created");
        tokio::spawn(consumer::run(handler, consumer, cancel))
    }

    /// What the `seats.expired` consumer runs for each batch, on the server's handles.
    pub fn expiry_handler(&self) -> ExpiryHandler {
        ExpiryHandler::new(
            self.context.db.clone(),
            self.context.seat_map.clone(),
            self.context.queue.clone(),
        )
    }

    /// The `seats.expired` events in the outbox, oldest first.
    pub async fn expired_events_in_outbox(&self) -> Vec<ExpiredHold> {
        #[derive(QueryableByName)]
        struct Payload {
            #[diesel(sql_type = diesel::sql_types::Jsonb)]
            payload: serde_json::Value,
        }
        diesel::sql_query(
            "SELECT payload FROM outbox WHERE event_type = 'seats.expired' ORDER BY id",
        )
        .load::<Payload>(&mut self.db().await)
        .await
        .expect("the outbox is readable")
        .into_iter()
        .map(|row| serde_json::from_value(row.payload).expect("a seats.expired payload"))
        .collect()
    }
}

impl TestApp {
    /// Announces an empty seat change of `schedule` on the change feed, as every hold, payment
    /// and cancellation does: it drops the schedule's cached seat map and count.
    pub async fn announce_seat_change(&self, schedule: i64) {
        use concert_reservation::booking::seat_map::SeatChange;
        self.context
            .seat_map
            .changed(SeatChange {
                schedule_id: concert_reservation::ids::ScheduleId(schedule),
                seat_ids: vec![],
                status: concert_reservation::db::enums::SeatStatus::Available,
            })
            .await;
    }
}
