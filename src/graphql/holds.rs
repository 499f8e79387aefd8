//! Seat holds: `holdSeats` and `holdBestAvailable`. Both need an ACTIVE queue token of the
//! caller for the schedule's concert in the `Queue-Token` header.

use async_graphql::{Context, ID, Object, Result};

use crate::booking::SeatChoice;
use crate::graphql::context::{app, queue_token, viewer};
use crate::graphql::reservations::ReservationObject;
use crate::ids::{ScheduleId, SeatId};

#[derive(Default)]
pub struct HoldMutation;

#[Object]
impl HoldMutation {
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

    /// Holds `count` free seats: side by side in one row when a row has them (the best such
    /// run), else the best seats split (best grade, lowest number first).
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
    let held = app(ctx)
        .booking
        .hold(viewer, queue_token(ctx), schedule_id, choice)
        .await?;
    Ok(ReservationObject(held.reservation, Some(held.seats)))
}
