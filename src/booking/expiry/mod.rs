//! Hold expiry, end to end in the database:
//! - [`sweep`] claims past-due HELD reservations with `FOR UPDATE SKIP LOCKED` (safe with several
//!   instances), marks them EXPIRED and writes a `seats.expired` outbox event in the same
//!   transaction (the hold path does the same for a past-due hold in its way, via [`expire`]);
//! - the Kafka consumer calls [`release`] for each event: seats still held by that hold go back to
//!   AVAILABLE. Releasing twice changes nothing;
//! - [`backstop`] frees seats whose hold ran out long ago but that no consumer released (broker or
//!   consumer down), so no seat is ever stuck.
//!
//! Until released, a seat whose hold ran out already counts as free for holds and reads AVAILABLE.
//! The [`sweeper`] runs `sweep` and `backstop` on a timer; the [`consumer`] runs `release`.

pub mod consumer;
pub mod sweeper;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::enums::{ReservationStatus, SeatStatus};
use crate::db::schema::{reservation_seats, reservations, schedules, seats};
use crate::error::AppResult;
use crate::events::outbox::{self, Event};
use crate::ids::{ConcertId, ReservationId, ScheduleId, SeatId, UserId};

pub use crate::events::ExpiredHold;

/// Marks the HELD reservations among `ids` whose time ran out as EXPIRED (the cascading FK takes
/// their seats out of the one-live-reservation index) and writes one `seats.expired` event each.
pub async fn expire(
    conn: &mut AsyncPgConnection,
    ids: &[ReservationId],
) -> AppResult<Vec<ExpiredHold>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let expired: Vec<(ReservationId, ScheduleId, UserId, DateTime<Utc>)> = diesel::update(
        reservations::table
            .filter(reservations::id.eq_any(ids))
            .filter(reservations::status.eq(ReservationStatus::Held))
            .filter(reservations::expires_at.le(diesel::dsl::now)),
    )
    .set((
        reservations::status.eq(ReservationStatus::Expired),
        reservations::updated_at.eq(diesel::dsl::now),
    ))
    .returning((
        reservations::id,
        reservations::schedule_id,
        reservations::user_id,
        reservations::expires_at,
    ))
    .get_results(conn)
    .await?;
    if expired.is_empty() {
        return Ok(Vec::new());
    }
    let expired_ids: Vec<ReservationId> = expired.iter().map(|row| row.0).collect();
    let schedule_ids: Vec<ScheduleId> = expired.iter().map(|row| row.1).collect();
    let concerts: HashMap<ScheduleId, ConcertId> = schedules::table
        .filter(schedules::id.eq_any(&schedule_ids))
        .select((schedules::id, schedules::concert_id))
        .load::<(ScheduleId, ConcertId)>(conn)
        .await?
        .into_iter()
        .collect();
    let mut seats_of: HashMap<ReservationId, Vec<SeatId>> = HashMap::new();
    for (reservation, seat) in reservation_seats::table
        .filter(reservation_seats::reservation_id.eq_any(&expired_ids))
        .select((
            reservation_seats::reservation_id,
            reservation_seats::seat_id,
        ))
        .load::<(ReservationId, SeatId)>(conn)
        .await?
    {
        seats_of.entry(reservation).or_default().push(seat);
    }
    let mut holds = Vec::with_capacity(expired.len());
    for (reservation_id, schedule_id, user_id, expires_at) in expired {
        let hold = ExpiredHold {
            reservation_id,
            schedule_id,
            concert_id: concerts.get(&schedule_id).copied().unwrap_or(ConcertId(0)),
            user_id,
            seat_ids: seats_of.remove(&reservation_id).unwrap_or_default(),
            expires_at,
        };
        outbox::append(conn, schedule_id, &Event::SeatsExpired(hold.clone())).await?;
        holds.push(hold);
    }
    Ok(holds)
}

/// One sweep: up to `batch` past-due holds, oldest first, skipping those another instance (or a
/// payment) is handling right now. Run it inside a transaction.
pub async fn sweep(conn: &mut AsyncPgConnection, batch: i64) -> AppResult<Vec<ExpiredHold>> {
    let due: Vec<ReservationId> = reservations::table
        .filter(reservations::status.eq(ReservationStatus::Held))
        .filter(reservations::expires_at.le(diesel::dsl::now))
        .order(reservations::expires_at)
        .limit(batch)
        .select(reservations::id)
        .for_update()
        .skip_locked()
        .load(conn)
        .await?;
    expire(conn, &due).await
}

/// Returns the seats of expired holds to sale, in one statement: those of `seat_ids` still HELD
/// with a hold that ran out. A seat held again since by someone else has a later `held_until` and
/// is left alone, so handling the same event twice (or late) changes nothing.
pub async fn release(conn: &mut AsyncPgConnection, seat_ids: &[SeatId]) -> AppResult<Vec<SeatId>> {
    let released = diesel::update(
        seats::table
            .filter(seats::id.eq_any(seat_ids))
            .filter(seats::status.eq(SeatStatus::Held))
            .filter(seats::held_until.le(diesel::dsl::now)),
    )
    .set((
        seats::status.eq(SeatStatus::Available),
        seats::held_until.eq(None::<DateTime<Utc>>),
        seats::updated_at.eq(diesel::dsl::now),
    ))
    .returning(seats::id)
    .get_results(conn)
    .await?;
    Ok(released)
}

/// Frees seats whose hold ran out more than `after` ago and are still marked HELD: their
/// `seats.expired` event was not handled in time.
pub async fn backstop(
    conn: &mut AsyncPgConnection,
    after: Duration,
) -> AppResult<Vec<(ScheduleId, SeatId)>> {
    let cutoff = Utc::now() - after;
    let freed = diesel::update(
        seats::table
            .filter(seats::status.eq(SeatStatus::Held))
            .filter(seats::held_until.lt(cutoff)),
    )
    .set((
        seats::status.eq(SeatStatus::Available),
        seats::held_until.eq(None::<DateTime<Utc>>),
        seats::updated_at.eq(diesel::dsl::now),
    ))
    .returning((seats::schedule_id, seats::id))
    .get_results(conn)
    .await?;
    Ok(freed)
}
