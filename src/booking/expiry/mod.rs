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

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::enums::{ReservationStatus, SeatStatus};
use crate::db::schema::{reservations, seats};
use crate::error::AppResult;
use crate::ids::{ConcertId, ReservationId, ScheduleId, SeatId, UserId};

diesel::define_sql_function! {
    /// Marks the HELD reservations among `ids` whose time ran out as EXPIRED (the cascading FK
    /// takes their seats out of the one-live-reservation index) and writes one `seats.expired`
    /// event each ([`crate::events::ExpiredHold`]); returns how many. The SQL function of that name (migration
    /// `hold_in_one_statement`) is the one statement of it: the hold calls it too.
    fn expire_holds(ids: diesel::sql_types::Array<diesel::sql_types::BigInt>) -> diesel::sql_types::Integer;
}

/// [`expire_holds`] on `ids`.
pub async fn expire(conn: &mut AsyncPgConnection, ids: &[ReservationId]) -> AppResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let expired: i32 = crate::db::one(diesel::select(expire_holds(ids)), conn).await?;
    Ok(usize::try_from(expired).unwrap_or(0))
}

/// One sweep: up to `batch` past-due holds, oldest first, skipping those another instance (or a
/// payment) is handling right now. Run it inside a transaction. Returns how many it expired.
pub async fn sweep(conn: &mut AsyncPgConnection, batch: i64) -> AppResult<usize> {
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

/// A seat the backstop freed: where it is, and who held it last (whose queue slot to free).
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct Freed {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub schedule_id: ScheduleId,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub seat_id: SeatId,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub concert_id: ConcertId,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    pub holder: Option<UserId>,
}

/// Frees seats whose hold ran out more than `after` ago and are still marked HELD: their
/// `seats.expired` event was not handled in time. One statement: the update, and for each seat
/// its concert and the fan of its last hold.
pub async fn backstop(conn: &mut AsyncPgConnection, after: Duration) -> AppResult<Vec<Freed>> {
    let cutoff = Utc::now() - after;
    let freed = diesel::sql_query(
        "WITH freed AS (
             UPDATE seats SET status = 'AVAILABLE', held_until = NULL, updated_at = now()
              WHERE status = 'HELD' AND held_until < $1
          RETURNING schedule_id, id)
         SELECT f.schedule_id, f.id AS seat_id, sc.concert_id, last_hold.user_id AS holder
           FROM freed f
           JOIN schedules sc ON sc.id = f.schedule_id
           LEFT JOIN LATERAL (
                SELECT r.user_id FROM reservation_seats rs
                  JOIN reservations r ON r.id = rs.reservation_id
                 WHERE rs.seat_id = f.id
                 ORDER BY r.id DESC LIMIT 1) last_hold ON true",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(cutoff)
    .load(conn)
    .await?;
    Ok(freed)
}
