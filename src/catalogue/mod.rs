//! The catalogue: concerts, their schedules (performances) and the seats of each schedule.
//! Every query takes a slice of ids so that GraphQL dataloaders can batch them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use itertools::Itertools;

use crate::db::enums::{SeatGrade, SeatStatus};
use crate::db::schema::{concerts, schedules, seats};
use crate::ids::{ConcertId, ScheduleId, SeatId};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = concerts, check_for_backend(diesel::pg::Pg))]
pub struct Concert {
    pub id: ConcertId,
    pub title: String,
    pub artist: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = schedules, check_for_backend(diesel::pg::Pg))]
pub struct Schedule {
    pub id: ScheduleId,
    pub concert_id: ConcertId,
    pub starts_at: DateTime<Utc>,
    pub venue: String,
}

#[derive(
    Debug, Clone, Queryable, Selectable, Identifiable, serde::Serialize, serde::Deserialize,
)]
#[diesel(table_name = seats, check_for_backend(diesel::pg::Pg))]
pub struct Seat {
    pub id: SeatId,
    pub schedule_id: ScheduleId,
    pub number: i32,
    pub grade: SeatGrade,
    pub price: i64,
    pub status: SeatStatus,
    /// When the hold on a HELD seat runs out.
    pub held_until: Option<DateTime<Utc>>,
}

impl Seat {
    /// The status a fan should see: a hold that ran out no longer keeps the seat, even before
    /// the expiry sweep has reset it.
    pub fn effective_status(&self, now: DateTime<Utc>) -> SeatStatus {
        match (self.status, self.held_until) {
            (SeatStatus::Held, Some(until)) if until <= now => SeatStatus::Available,
            (status, _) => status,
        }
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = concerts)]
pub struct NewConcert<'a> {
    pub title: &'a str,
    pub artist: &'a str,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = schedules)]
pub struct NewSchedule<'a> {
    pub concert_id: ConcertId,
    pub starts_at: DateTime<Utc>,
    pub venue: &'a str,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = seats)]
pub struct NewSeat {
    pub schedule_id: ScheduleId,
    pub number: i32,
    pub grade: SeatGrade,
    pub price: i64,
}

impl Concert {
    /// One page of concerts, oldest first.
    pub async fn list(
        conn: &mut AsyncPgConnection,
        limit: i64,
        offset: i64,
    ) -> QueryResult<Vec<Concert>> {
        concerts::table
            .select(Concert::as_select())
            .order(concerts::id)
            .limit(limit)
            .offset(offset)
            .load(conn)
            .await
    }

    pub async fn by_ids(
        conn: &mut AsyncPgConnection,
        ids: &[ConcertId],
    ) -> QueryResult<HashMap<ConcertId, Concert>> {
        let rows: Vec<Concert> = concerts::table
            .filter(concerts::id.eq_any(ids))
            .select(Concert::as_select())
            .load(conn)
            .await?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

/// Whether concerts exist, remembered for a short while: entering a queue is the hottest write of
/// an on-sale and must not hit PostgreSQL each time. A concert created after a miss for its id
/// is known within `CONCERT_CACHE_TTL`.
///
/// It also remembers which concert a schedule belongs to (that never changes), so the guard of
/// holds and payments needs no query to find the queue a request must be ACTIVE in.
#[derive(Clone)]
pub struct ConcertDirectory {
    known: moka::future::Cache<ConcertId, bool>,
    concert_of: moka::future::Cache<ScheduleId, Option<ConcertId>>,
}

const CONCERT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

impl Default for ConcertDirectory {
    fn default() -> Self {
        Self {
            known: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CONCERT_CACHE_TTL)
                .build(),
            // A miss (no such schedule) is forgotten after the TTL, like an unknown concert.
            concert_of: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CONCERT_CACHE_TTL)
                .build(),
        }
    }
}

impl ConcertDirectory {
    /// True when the concert exists. Concurrent misses for one id share a single query.
    pub async fn exists(
        &self,
        db: &crate::db::Database,
        id: ConcertId,
    ) -> crate::error::AppResult<bool> {
        self.known
            .try_get_with(id, async {
                let mut conn = db.conn().await?;
                let found = Concert::by_ids(&mut conn, &[id]).await?;
                Ok::<_, crate::error::AppError>(found.contains_key(&id))
            })
            .await
            .map_err(shared_error)
    }

    /// The concert of a schedule (`None`: no such schedule). Concurrent misses share a query.
    pub async fn concert_of(
        &self,
        db: &crate::db::Database,
        schedule: ScheduleId,
    ) -> crate::error::AppResult<Option<ConcertId>> {
        self.concert_of
            .try_get_with(schedule, async {
                let mut conn = db.conn().await?;
                Ok::<_, crate::error::AppError>(Schedule::concert_of(&mut conn, schedule).await?)
            })
            .await
            .map_err(shared_error)
    }

    /// [`ConcertDirectory::concert_of`] for a caller inside a transaction: a miss is read on the
    /// caller's own connection. Holding a pooled connection while waiting for a second one would
    /// let a cold cache starve the pool (every transaction waiting for the one that loads).
    pub async fn concert_of_on(
        &self,
        conn: &mut AsyncPgConnection,
        schedule: ScheduleId,
    ) -> crate::error::AppResult<Option<ConcertId>> {
        self.concert_of
            .try_get_with(schedule, async {
                Ok::<_, crate::error::AppError>(Schedule::concert_of(conn, schedule).await?)
            })
            .await
            .map_err(shared_error)
    }
}

/// The error of a cache load that several callers waited for, for each of them.
fn shared_error(err: std::sync::Arc<crate::error::AppError>) -> crate::error::AppError {
    match &*err {
        crate::error::AppError::Unavailable(_) => {
            crate::error::AppError::Unavailable(anyhow::anyhow!("{err}"))
        }
        _ => crate::error::AppError::Internal(anyhow::anyhow!("{err}")),
    }
}

impl Schedule {
    /// The concert a schedule belongs to (`None`: no such schedule).
    pub async fn concert_of(
        conn: &mut AsyncPgConnection,
        id: ScheduleId,
    ) -> QueryResult<Option<ConcertId>> {
        schedules::table
            .find(id)
            .select(schedules::concert_id)
            .first(conn)
            .await
            .optional()
    }

    pub async fn by_ids(
        conn: &mut AsyncPgConnection,
        ids: &[ScheduleId],
    ) -> QueryResult<HashMap<ScheduleId, Schedule>> {
        let rows: Vec<Schedule> = schedules::table
            .filter(schedules::id.eq_any(ids))
            .select(Schedule::as_select())
            .load(conn)
            .await?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }

    /// The schedules of each concert, earliest performance first.
    pub async fn for_concerts(
        conn: &mut AsyncPgConnection,
        concert_ids: &[ConcertId],
    ) -> QueryResult<HashMap<ConcertId, Vec<Schedule>>> {
        let rows: Vec<Schedule> = schedules::table
            .filter(schedules::concert_id.eq_any(concert_ids))
            .select(Schedule::as_select())
            .order((schedules::concert_id, schedules::starts_at, schedules::id))
            .load(conn)
            .await?;
        Ok(rows.into_iter().into_group_map_by(|row| row.concert_id))
    }
}

impl Seat {
    /// How many seats of each schedule are free now (AVAILABLE, or HELD by a hold that ran out),
    /// counted in the database: a concert page shows this for every schedule, and reading every
    /// seat for it would move thousands of rows per page.
    pub async fn available_counts(
        conn: &mut AsyncPgConnection,
        schedule_ids: &[ScheduleId],
    ) -> QueryResult<HashMap<ScheduleId, i64>> {
        let rows: Vec<(ScheduleId, i64)> = seats::table
            .filter(seats::schedule_id.eq_any(schedule_ids))
            .filter(
                seats::status.eq(SeatStatus::Available).or(seats::status
                    .eq(SeatStatus::Held)
                    .and(seats::held_until.le(diesel::dsl::now))),
            )
            .group_by(seats::schedule_id)
            .select((seats::schedule_id, diesel::dsl::count_star()))
            .load(conn)
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// The seats of each schedule, by seat number.
    pub async fn for_schedules(
        conn: &mut AsyncPgConnection,
        schedule_ids: &[ScheduleId],
    ) -> QueryResult<HashMap<ScheduleId, Vec<Seat>>> {
        let rows: Vec<Seat> = seats::table
            .filter(seats::schedule_id.eq_any(schedule_ids))
            .select(Seat::as_select())
            .order((seats::schedule_id, seats::number))
            .load(conn)
            .await?;
        Ok(rows.into_iter().into_group_map_by(|row| row.schedule_id))
    }
}
