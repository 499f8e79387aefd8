//! Cancellation: a fan cancels their own hold, or their paid booking, which refunds its price to
//! their balance. The seats go back on sale in the same transaction.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::AsyncPgConnection;

use crate::account;
use crate::auth::Viewer;
use crate::booking::seat_map::SeatChange;
use crate::booking::{Booking, Reservation, set_seats_of};
use crate::db::enums::{LedgerReason, ReservationStatus, SeatStatus};
use crate::db::schema::{reservations, schedules};
use crate::error::{AppError, AppResult};
use crate::events::outbox::{self, Event, ReservationCancelled};
use crate::ids::{ReservationId, SeatId, UserId};
use crate::metrics as m;

impl Booking {
    /// Cancels the viewer's reservation and frees its seats. A paid one is refunded to the
    /// balance.
    pub async fn cancel(
        &self,
        viewer: Viewer,
        reservation_id: ReservationId,
    ) -> AppResult<Reservation> {
        let user = viewer.user_id;
        let _slot = self.limit.enter()?;
        let mut conn = self.db.conn().await?;
        let deadline = self.refund_deadline_hours;
        let result = crate::retry_transaction!(&mut conn, async |tx| cancel_in_transaction(
            tx,
            user,
            reservation_id,
            deadline
        )
        .await);
        let outcome = match &result {
            Ok(_) => "cancelled",
            Err(err) => err.code(),
        };
        metrics::counter!(m::CANCELLATIONS_TOTAL, "outcome" => outcome).increment(1);
        let (cancelled, freed) = result?;
        // A fan who gave a hold up keeps their ACTIVE slot for the idle time, not the hold's.
        if let Ok(Some(concert)) = self
            .concerts
            .concert_of(&self.db, cancelled.schedule_id)
            .await
            && let Err(err) = self.queue.released(concert, user).await
        {
            tracing::warn!(error = %err, "a cancelled hold's idle deadline was not moved");
        }
        let change = SeatChange {
            schedule_id: cancelled.schedule_id,
            seat_ids: freed,
            status: SeatStatus::Available,
        };
        self.seat_map.changed(change).await;
        Ok(cancelled)
    }
}

/// Cancels `reservation_id` of `user`; a paid one only until `refund_deadline_hours` before its
/// performance.
async fn cancel_in_transaction(
    conn: &mut AsyncPgConnection,
    user: UserId,
    reservation_id: ReservationId,
    refund_deadline_hours: u64,
) -> AppResult<(Reservation, Vec<SeatId>)> {
    let reservation = Reservation::lock_own(conn, reservation_id, user).await?;
    match reservation.status {
        ReservationStatus::Held if reservation.expires_at > Utc::now() => {}
        ReservationStatus::Confirmed => {
            let starts_at = schedules::table
                .find(reservation.schedule_id)
                .select(schedules::starts_at);
            let starts_at: DateTime<Utc> = crate::db::one(starts_at, conn).await?;
            // At most ten years (the setting's range): no overflow.
            let deadline = Duration::hours(refund_deadline_hours as i64);
            if Utc::now() + deadline > starts_at {
                return Err(AppError::NotRefundable {
                    hours: refund_deadline_hours,
                });
            }
            account::record(
                conn,
                user,
                reservation.total_price,
                LedgerReason::Refund,
                Some(reservation_id),
            )
            .await?
            .ok_or(AppError::NotFound("user"))?;
        }
        ReservationStatus::Held | ReservationStatus::Expired => return Err(AppError::HoldExpired),
        ReservationStatus::Cancelled => return Err(AppError::HoldCancelled),
    }
    let freed = set_seats_of(conn, reservation_id, SeatStatus::Available).await?;
    let cancel = diesel::update(reservations::table.find(reservation_id))
        .set((
            reservations::status.eq(ReservationStatus::Cancelled),
            reservations::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Reservation::as_returning());
    let cancelled: Reservation = crate::db::one(cancel, conn).await?;
    let event = Event::ReservationCancelled(ReservationCancelled {
        reservation_id,
        schedule_id: reservation.schedule_id,
        refunded: reservation.status == ReservationStatus::Confirmed,
    });
    outbox::append(conn, reservation.schedule_id, &event).await?;
    Ok((cancelled, freed))
}
