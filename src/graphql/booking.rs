//! Seat holds. Both mutations need an ACTIVE queue token of the caller for the schedule's concert
//! in the `Queue-Token` header.

use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};

use crate::booking::{self, Reservation, SeatChoice};
use crate::db::enums::ReservationStatus;
use crate::graphql::catalogue::{ScheduleObject, SeatObject};
use crate::graphql::{QueueTokenHeader, loaders, services, viewer};
use crate::ids::{ScheduleId, SeatId};

#[derive(Default)]
pub struct BookingMutation;

#[Object]
impl BookingMutation {
    /// Holds exactly these seats for a few minutes, or nothing: `SEAT_UNAVAILABLE` at once when any
    /// of them is taken. One live hold per fan and schedule.
    async fn hold_seats(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
        seat_ids: Vec<ID>,
    ) -> Result<ReservationObject> {
        let schedule_id = ScheduleId::parse(&schedule_id)?;
        let seat_ids = seat_ids
            .iter()
            .map(SeatId::parse)
            .collect::<Result<Vec<_>, _>>()?;
        hold(ctx, schedule_id, SeatChoice::Chosen(seat_ids)).await
    }

    /// Holds any `count` free seats, best grade and lowest number first.
    async fn hold_best_available(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
        count: i32,
    ) -> Result<ReservationObject> {
        let schedule_id = ScheduleId::parse(&schedule_id)?;
        let count = u32::try_from(count).unwrap_or(0);
        hold(ctx, schedule_id, SeatChoice::BestAvailable(count)).await
    }
}

async fn hold(
    ctx: &Context<'_>,
    schedule_id: ScheduleId,
    choice: SeatChoice,
) -> Result<ReservationObject> {
    let viewer = viewer(ctx)?;
    let queue_token = ctx
        .data_opt::<QueueTokenHeader>()
        .and_then(|header| header.0.as_deref());
    let reservation =
        booking::hold(services(ctx), viewer, queue_token, schedule_id, choice).await?;
    Ok(ReservationObject(reservation))
}

/// A hold, and the booking it becomes once paid.
pub struct ReservationObject(pub Reservation);

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
            .schedules
            .load_one(self.0.schedule_id)
            .await?
            .map(ScheduleObject))
    }

    async fn seats(&self, ctx: &Context<'_>) -> Result<Vec<SeatObject>> {
        let seats = loaders(ctx)
            .seats_by_reservation
            .load_one(self.0.id)
            .await?;
        Ok(seats
            .unwrap_or_default()
            .into_iter()
            .map(SeatObject)
            .collect())
    }
}
