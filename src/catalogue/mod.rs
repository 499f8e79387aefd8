//! The catalogue: concerts, their schedules (performances) and the seats of each schedule.
//! Every query takes a slice of ids so that GraphQL dataloaders can batch them. The
//! [`directory`] remembers which concerts exist and which concert a schedule belongs to.

pub mod directory;
pub mod opening;
pub mod organise;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use itertools::Itertools;

use crate::db::enums::{SeatGrade, SeatStatus};
use crate::db::schema::{concerts, schedules, seats};
use crate::error::AppError;
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
    /// Fans may enter the queue from then (None: when the sale opens).
    pub prequeue_opens_at: Option<DateTime<Utc>>,
    /// The sale opens then (None: it is open).
    pub sales_open_at: Option<DateTime<Utc>>,
    /// The sale closes then (None: when the performance starts).
    pub sales_close_at: Option<DateTime<Utc>>,
    /// The performance was cancelled then (its sale is closed).
    pub cancelled_at: Option<DateTime<Utc>>,
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

diesel::define_sql_function! {
    /// "Is this seat free?": AVAILABLE, or HELD by a hold whose time ran out at or before now
    /// (the expiry sweep may not have reached it yet; it must not keep the seat from a fan who
    /// wants it now). The rule is stated once, as the SQL function of that name (migration
    /// `hold_in_one_statement`), which every query that asks uses, the hold included;
    /// [`Seat::effective_status`] says the same of a loaded row.
    fn seat_is_free(
        status: crate::db::schema::sql_types::SeatStatus,
        held_until: diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
    ) -> diesel::sql_types::Bool;
}

impl Seat {
    /// The status a fan should see: a hold that ran out (at or before `now`, as in
    /// [`seat_is_free`]) no longer keeps the seat, even before the expiry sweep has reset it.
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
    pub prequeue_opens_at: Option<DateTime<Utc>>,
    pub sales_open_at: Option<DateTime<Utc>>,
    pub sales_close_at: Option<DateTime<Utc>>,
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

impl Concert {
    /// Which of `concert_ids` still have a seat to sell: a seat that is free (see
    /// [`seat_is_free`]) in any of their schedules. The others are sold out. A held seat is not
    /// free until its hold runs out, is cancelled or expires: then the concert is on sale again.
    ///
    /// The admitter asks this four times a second for every queued concert, so it must cost the
    /// same when the concert is nearly sold out as when it opens: asked as one scan over every
    /// unsold seat, it read each seat already held before finding a free one (36 ms for ten
    /// schedules with 10,000 holds each, docs/performance.md). The two halves of the rule (an
    /// AVAILABLE seat; a HELD one whose hold ran out) are asked apart, each the first entry of a
    /// partial index (migration `free_seat_indexes`); [`seat_is_free`] still decides.
    pub async fn with_free_seats(
        conn: &mut AsyncPgConnection,
        concert_ids: &[ConcertId],
    ) -> QueryResult<Vec<ConcertId>> {
        let available = seats::table
            .filter(seats::schedule_id.eq(schedules::id))
            .filter(seats::status.eq(SeatStatus::Available))
            .filter(seat_is_free(seats::status, seats::held_until));
        let ran_out = seats::table
            .filter(seats::schedule_id.eq(schedules::id))
            .filter(seats::status.eq(SeatStatus::Held))
            .filter(seats::held_until.le(diesel::dsl::now))
            .filter(seat_is_free(seats::status, seats::held_until));
        schedules::table
            .filter(schedules::concert_id.eq_any(concert_ids))
            .filter(diesel::dsl::exists(available).or(diesel::dsl::exists(ran_out)))
            .select(schedules::concert_id)
            .distinct()
            .load(conn)
            .await
    }
}

impl Schedule {
    /// Whether the sale takes holds at `now`: from its opening (if it has one) until its
    /// closing, or the start of the performance when it has none. `SALE_NOT_OPEN` (with the
    /// opening time) before, `SALE_CLOSED` after, and once the performance is cancelled.
    pub fn check_on_sale(&self, now: DateTime<Utc>) -> Result<(), AppError> {
        if self.cancelled_at.is_some() {
            return Err(AppError::SaleClosed);
        }
        if let Some(opens) = self.sales_open_at
            && now < opens
        {
            return Err(AppError::SaleNotOpen {
                opens_at: opens,
                prequeue_opens_at: None,
            });
        }
        if !self.sells_at(now) {
            return Err(AppError::SaleClosed);
        }
        Ok(())
    }

    /// Whether the sale has not closed at `now` (its opening may still be ahead): not cancelled,
    /// and before its closing, or the start of the performance when it has none.
    pub fn sells_at(&self, now: DateTime<Utc>) -> bool {
        self.cancelled_at.is_none() && now < self.sales_close_at.unwrap_or(self.starts_at)
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
            .filter(seat_is_free(seats::status, seats::held_until))
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
