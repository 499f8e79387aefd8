//! The transactional outbox: every event the service publishes, with its payload, and the one
//! way Rust code writes it ([`append`]). A business transaction appends its event in the same
//! transaction as the change it reports; the relay publishes it later (at least once, in order
//! per schedule).
//!
//! `seats.held` and `seats.expired` are written inside PostgreSQL by the `hold_seats` and
//! `expire_holds` functions (a hold is one statement); [`SeatsHeld`] and [`ExpiredHold`] are
//! still their definition, and a test reads what those functions wrote back into these types.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use crate::db::schema::outbox;
use crate::error::{AppError, AppResult};
use crate::ids::{ConcertId, ReservationId, ScheduleId, SeatId, UserId};

/// Names of the events, as stored in `outbox.event_type` and sent in the `event_type` header.
pub mod name {
    pub const SEATS_HELD: &str = "seats.held";
    pub const PAYMENT_COMPLETED: &str = "payment.completed";
    pub const RESERVATION_CANCELLED: &str = "reservation.cancelled";
    pub const SEATS_EXPIRED: &str = "seats.expired";
}

/// Every event of the service, with its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    SeatsHeld(SeatsHeld),
    PaymentCompleted(PaymentCompleted),
    ReservationCancelled(ReservationCancelled),
    SeatsExpired(ExpiredHold),
}

/// `seats.held`: a fan holds seats until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatsHeld {
    pub reservation_id: ReservationId,
    pub schedule_id: ScheduleId,
    pub user_id: UserId,
    pub seat_ids: Vec<SeatId>,
    pub expires_at: DateTime<Utc>,
}

/// `payment.completed`: a hold was paid (the payment's receipt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCompleted {
    pub payment_id: i64,
    pub reservation_id: ReservationId,
    pub amount: i64,
    pub balance_after: i64,
    pub paid_at: DateTime<Utc>,
}

/// `reservation.cancelled`: a hold or booking was cancelled; `refunded` when it had been paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationCancelled {
    pub reservation_id: ReservationId,
    pub schedule_id: ScheduleId,
    pub refunded: bool,
}

/// `seats.expired`: a hold ran out unpaid; its consumer puts the seats back on sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredHold {
    pub reservation_id: ReservationId,
    pub schedule_id: ScheduleId,
    pub concert_id: ConcertId,
    pub user_id: UserId,
    pub seat_ids: Vec<SeatId>,
    pub expires_at: DateTime<Utc>,
}

impl Event {
    /// The event's name (`outbox.event_type`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::SeatsHeld(_) => name::SEATS_HELD,
            Self::PaymentCompleted(_) => name::PAYMENT_COMPLETED,
            Self::ReservationCancelled(_) => name::RESERVATION_CANCELLED,
            Self::SeatsExpired(_) => name::SEATS_EXPIRED,
        }
    }

    fn payload(&self) -> serde_json::Result<serde_json::Value> {
        match self {
            Self::SeatsHeld(event) => serde_json::to_value(event),
            Self::PaymentCompleted(event) => serde_json::to_value(event),
            Self::ReservationCancelled(event) => serde_json::to_value(event),
            Self::SeatsExpired(event) => serde_json::to_value(event),
        }
    }
}

/// Appends `event` to the outbox, on the caller's connection (inside its transaction). The
/// schedule is the partition key, so one schedule's events keep their order.
pub async fn append(
    conn: &mut AsyncPgConnection,
    schedule: ScheduleId,
    event: &Event,
) -> AppResult<()> {
    let payload = event.payload().map_err(AppError::internal)?;
    diesel::insert_into(outbox::table)
        .values((
            outbox::event_type.eq(event.name()),
            outbox::partition_key.eq(schedule.to_string()),
            outbox::payload.eq(payload),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Appends `events` of one schedule to the outbox, in order, in as few statements as the bind
/// parameter limit allows (10,000 events a statement).
pub async fn append_all(
    conn: &mut AsyncPgConnection,
    schedule: ScheduleId,
    events: &[Event],
) -> AppResult<()> {
    let key = schedule.to_string();
    for chunk in events.chunks(10_000) {
        let mut rows = Vec::with_capacity(chunk.len());
        for event in chunk {
            let payload = event.payload().map_err(AppError::internal)?;
            rows.push((
                outbox::event_type.eq(event.name()),
                outbox::partition_key.eq(key.clone()),
                outbox::payload.eq(payload),
            ));
        }
        diesel::insert_into(outbox::table)
            .values(rows)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Which Kafka topic each event goes to: hold expiry on its own topic (it has a consumer here),
/// everything else on the booking-events topic.
#[derive(Debug, Clone)]
pub struct Topics {
    pub seats_expired: String,
    pub booking_events: String,
}

impl Topics {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            seats_expired: config.kafka_topic_seats_expired.clone(),
            booking_events: config.kafka_topic_booking_events.clone(),
        }
    }

    /// The topic of an event, by its name.
    pub fn for_event(&self, event_type: &str) -> &str {
        match event_type {
            name::SEATS_EXPIRED => &self.seats_expired,
            _ => &self.booking_events,
        }
    }

    /// Every topic, for creating them.
    pub fn all(&self) -> Vec<String> {
        vec![self.seats_expired.clone(), self.booking_events.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> Topics {
        Topics {
            seats_expired: "expired".into(),
            booking_events: "booking".into(),
        }
    }

    #[test]
    fn only_expiry_goes_to_its_own_topic() {
        let topics = topics();
        assert_eq!(topics.for_event(name::SEATS_EXPIRED), "expired");
        for other in [
            name::SEATS_HELD,
            name::PAYMENT_COMPLETED,
            name::RESERVATION_CANCELLED,
        ] {
            assert_eq!(topics.for_event(other), "booking");
        }
    }

    #[test]
    fn payloads_keep_their_published_shape() {
        let event = Event::ReservationCancelled(ReservationCancelled {
            reservation_id: ReservationId(7),
            schedule_id: ScheduleId(3),
            refunded: true,
        });
        assert_eq!(event.name(), "reservation.cancelled");
        assert_eq!(
            event.payload().unwrap(),
            serde_json::json!({ "reservation_id": 7, "schedule_id": 3, "refunded": true })
        );
    }
}
