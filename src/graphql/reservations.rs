//! Reservations: the `Reservation` a hold returns (and the booking it becomes), its payment, and
//! `cancelReservation`.

use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};

use crate::booking::Reservation;
use crate::catalogue::Seat;
use crate::db::enums::ReservationStatus;
use crate::graphql::catalogue::{ScheduleObject, SeatObject};
use crate::graphql::context::{app, loaders, viewer};
use crate::ids::ReservationId;
use crate::payment::models::Payment;

#[derive(Default)]
pub struct ReservationMutation;

#[Object]
impl ReservationMutation {
    /// Cancels your reservation and frees its seats; a paid one is refunded to your balance.
    async fn cancel_reservation(
        &self,
        ctx: &Context<'_>,
        reservation_id: ID,
    ) -> Result<ReservationObject> {
        let viewer = viewer(ctx)?;
        let reservation_id = ReservationId::parse(&reservation_id)?;
        Ok(ReservationObject::from(
            app(ctx).booking.cancel(viewer, reservation_id).await?,
        ))
    }
}

/// A hold, and the booking it becomes once paid. A fresh hold carries its seats, so answering
/// `seats` needs no read.
pub struct ReservationObject(pub Reservation, pub Option<Vec<Seat>>);

impl From<Reservation> for ReservationObject {
    fn from(reservation: Reservation) -> Self {
        Self(reservation, None)
    }
}

#[Object(name = "Reservation")]
impl ReservationObject {
    async fn id(&self) -> ID {
        self.0.id.into()
    }

    /// A HELD reservation whose time ran out reads EXPIRED, even before the expiry sweep.
    async fn status(&self) -> ReservationStatus {
        match self.0.status {
            ReservationStatus::Held if self.0.expires_at <= Utc::now() => {
                ReservationStatus::Expired
            }
            status => status,
        }
    }

    /// Sum of the seats' prices, in points.
    async fn total_price(&self) -> i64 {
        self.0.total_price
    }

    /// When an unpaid hold ends.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn schedule(&self, ctx: &Context<'_>) -> Result<Option<ScheduleObject>> {
        Ok(loaders(ctx)
            .schedules()
            .load_one(self.0.schedule_id)
            .await?
            .map(ScheduleObject))
    }

    #[graphql(complexity = "super::cost::SEATS_PER_RESERVATION * child_complexity")]
    async fn seats(&self, ctx: &Context<'_>) -> Result<Vec<SeatObject>> {
        if let Some(seats) = &self.1 {
            return Ok(seats.iter().cloned().map(SeatObject).collect());
        }
        let seats = loaders(ctx)
            .seats_by_reservation()
            .load_one(self.0.id)
            .await?;
        Ok(seats
            .unwrap_or_default()
            .into_iter()
            .map(SeatObject)
            .collect())
    }

    /// The payment, once paid.
    async fn payment(&self, ctx: &Context<'_>) -> Result<Option<PaymentObject>> {
        Ok(loaders(ctx)
            .payment_by_reservation()
            .load_one(self.0.id)
            .await?
            .map(PaymentObject))
    }
}

/// A payment of a reservation.
pub struct PaymentObject(pub Payment);

#[Object(name = "Payment")]
impl PaymentObject {
    async fn id(&self) -> ID {
        self.0.id.into()
    }

    async fn amount(&self) -> i64 {
        self.0.amount
    }

    async fn paid_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}
