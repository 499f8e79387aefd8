//! Cancellation: a fan cancels their own hold, or their paid booking, which refunds its price to
//! their balance. The seats go back on sale in the same transaction. An organiser cancels a whole
//! performance: every hold cancelled, every booking refunded, the seats withdrawn from sale.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::account;
use crate::auth::Viewer;
use crate::booking::seat_map::SeatChange;
use crate::booking::{Booking, Reservation, set_seats_of};
use crate::db::enums::{LedgerReason, ReservationStatus, SeatStatus};
use crate::db::schema::{reservations, schedules, seats};
use crate::error::{AppError, AppResult};
use crate::events::outbox::{self, Event, ReservationCancelled};
use crate::ids::{ReservationId, ScheduleId, SeatId, UserId};
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

/// What cancelling a performance did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelledSchedule {
    pub schedule_id: ScheduleId,
    pub cancelled_at: DateTime<Utc>,
    /// False when it had been cancelled before (nothing was done again).
    pub now: bool,
    pub holds_cancelled: usize,
    pub bookings_refunded: usize,
    pub points_refunded: i64,
    pub seats_withdrawn: usize,
}

impl Booking {
    /// Cancels a performance (organisers only; see [`cancel_schedule_in_transaction`]), then
    /// tells seat-map watchers that its seats are WITHDRAWN. Cancelling again changes nothing.
    pub async fn cancel_schedule(
        &self,
        organiser: Viewer,
        schedule: ScheduleId,
    ) -> AppResult<CancelledSchedule> {
        organiser.organiser()?;
        let mut conn = self.db.conn().await?;
        let (cancelled, withdrawn) = crate::retry_transaction!(&mut conn, async |tx| {
            cancel_schedule_in_transaction(tx, schedule).await
        })?;
        self.concerts.forget_schedule(schedule).await;
        if !withdrawn.is_empty() {
            let change = SeatChange {
                schedule_id: schedule,
                seat_ids: withdrawn,
                status: SeatStatus::Withdrawn,
            };
            self.seat_map.changed(change).await;
        }
        tracing::info!(
            %schedule,
            holds = cancelled.holds_cancelled,
            bookings = cancelled.bookings_refunded,
            points = cancelled.points_refunded,
            "performance cancelled"
        );
        Ok(cancelled)
    }
}

/// Cancels `schedule` in one transaction, in an order that leaves no gap and takes locks in
/// the order payments and holds take them:
/// 1. marks it cancelled (its row locked FOR NO KEY UPDATE: one cancellation at a time, and a
///    second one finds the mark and does nothing; a hold's reference to the row is not blocked);
/// 2. locks the live reservations (HELD or CONFIRMED): waits for payments in flight, which lock
///    their reservation before its seats;
/// 3. withdraws every seat: the update waits for holds in flight (a hold locks its seats), and
///    once it is done no hold can take a seat of the performance (a WITHDRAWN seat is never free);
/// 4. reads the live reservations again, holds that committed meanwhile included, refunds the
///    paid ones (one ledger entry each), cancels them all and writes one `reservation.cancelled`
///    event each, so fans see it in their bookings and the event stream.
///
/// A payment racing it either committed first (its booking is refunded here) or finds the hold
/// cancelled. A deadlock (a hold paid within the few milliseconds between steps 2 and 4) is
/// retried. Returns the summary and the seats withdrawn.
async fn cancel_schedule_in_transaction(
    conn: &mut AsyncPgConnection,
    schedule: ScheduleId,
) -> AppResult<(CancelledSchedule, Vec<SeatId>)> {
    let mark = schedules::table
        .find(schedule)
        .select(schedules::cancelled_at)
        .for_no_key_update();
    let before: Option<DateTime<Utc>> = crate::db::one(mark, conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("schedule"))?;
    if let Some(cancelled_at) = before {
        let summary = CancelledSchedule {
            schedule_id: schedule,
            cancelled_at,
            now: false,
            holds_cancelled: 0,
            bookings_refunded: 0,
            points_refunded: 0,
            seats_withdrawn: 0,
        };
        return Ok((summary, Vec::new()));
    }
    let mark = diesel::update(schedules::table.find(schedule))
        .set(schedules::cancelled_at.eq(diesel::dsl::now))
        .returning(schedules::cancelled_at);
    let cancelled_at: Option<DateTime<Utc>> = crate::db::one(mark, conn).await?;
    let live = reservations::table
        .filter(reservations::schedule_id.eq(schedule))
        .filter(
            reservations::status.eq_any([ReservationStatus::Held, ReservationStatus::Confirmed]),
        );
    let _locked: Vec<ReservationId> = live
        .select(reservations::id)
        .for_update()
        .load(conn)
        .await?;
    let withdrawn: Vec<SeatId> =
        diesel::update(seats::table.filter(seats::schedule_id.eq(schedule)))
            .set((
                seats::status.eq(SeatStatus::Withdrawn),
                seats::held_until.eq(None::<DateTime<Utc>>),
                seats::updated_at.eq(diesel::dsl::now),
            ))
            .returning(seats::id)
            .load(conn)
            .await?;
    let live: Vec<(ReservationId, ReservationStatus)> = reservations::table
        .filter(reservations::schedule_id.eq(schedule))
        .filter(
            reservations::status.eq_any([ReservationStatus::Held, ReservationStatus::Confirmed]),
        )
        .order(reservations::id)
        .select((reservations::id, reservations::status))
        .for_update()
        .load(conn)
        .await?;
    let paid: Vec<ReservationId> = live
        .iter()
        .filter(|(_, status)| *status == ReservationStatus::Confirmed)
        .map(|(id, _)| *id)
        .collect();
    let points_refunded = account::refund_all(conn, &paid).await?;
    let ids: Vec<ReservationId> = live.iter().map(|(id, _)| *id).collect();
    diesel::update(reservations::table.filter(reservations::id.eq_any(&ids)))
        .set((
            reservations::status.eq(ReservationStatus::Cancelled),
            reservations::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    let events: Vec<Event> = live
        .iter()
        .map(|(id, status)| {
            Event::ReservationCancelled(ReservationCancelled {
                reservation_id: *id,
                schedule_id: schedule,
                refunded: *status == ReservationStatus::Confirmed,
            })
        })
        .collect();
    outbox::append_all(conn, schedule, &events).await?;
    let summary = CancelledSchedule {
        schedule_id: schedule,
        cancelled_at: cancelled_at.unwrap_or_else(Utc::now),
        now: true,
        holds_cancelled: live.len() - paid.len(),
        bookings_refunded: paid.len(),
        points_refunded,
        seats_withdrawn: withdrawn.len(),
    };
    Ok((summary, withdrawn))
}
