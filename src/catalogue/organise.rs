//! What organisers change in the catalogue: concerts, schedules with their sale times, and a
//! schedule's seat map (sections, rows, grades and prices). Every input is checked as a whole
//! before anything is written, and each change is one transaction: nothing is ever half-created.
//! `seed` creates its demo data through these same functions.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::{Concert, NewConcert, NewSchedule, Schedule};
use crate::db::enums::{SeatGrade, SeatStatus};
use crate::db::error::violates_foreign_key;
use crate::db::schema::{concerts, reservations, schedules, seats};
use crate::error::{AppError, AppResult};
use crate::ids::{ConcertId, ScheduleId};

/// The most seats one schedule may have (a large stadium).
pub const MAX_SEATS: usize = 100_000;
/// The most seats in one row.
pub const MAX_SEATS_PER_ROW: u32 = 1_000;
/// The highest price of a seat, in points.
pub const MAX_PRICE: i64 = 100_000_000;
/// Seat rows per INSERT: 7 values a row stays far below PostgreSQL's 65,535 bind parameters.
const CHUNK: usize = 5_000;

/// Checks a text field: trimmed, not empty, at most `max` characters, no control characters.
fn text<'a>(what: &str, value: &'a str, max: usize) -> AppResult<&'a str> {
    let value = value.trim();
    if value.is_empty() {
        return Err(AppError::InvalidInput(format!("{what} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(AppError::InvalidInput(format!(
            "{what} must be at most {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(AppError::InvalidInput(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(value)
}

/// Creates a concert.
pub async fn create_concert(
    conn: &mut AsyncPgConnection,
    title: &str,
    artist: &str,
) -> AppResult<Concert> {
    let new = NewConcert {
        title: text("the title", title, 200)?,
        artist: text("the artist", artist, 200)?,
    };
    let query = diesel::insert_into(concerts::table)
        .values(&new)
        .returning(Concert::as_returning());
    Ok(crate::db::one(query, conn).await?)
}

/// Changes a concert's title or artist (a `None` stays as it is).
pub async fn update_concert(
    conn: &mut AsyncPgConnection,
    id: ConcertId,
    title: Option<&str>,
    artist: Option<&str>,
) -> AppResult<Concert> {
    let title = title.map(|t| text("the title", t, 200)).transpose()?;
    let artist = artist.map(|a| text("the artist", a, 200)).transpose()?;
    if title.is_none() && artist.is_none() {
        let found = Concert::by_ids(conn, &[id]).await?.remove(&id);
        return found.ok_or(AppError::NotFound("concert"));
    }
    let query = diesel::update(concerts::table.find(id))
        .set((
            title.map(|t| concerts::title.eq(t)),
            artist.map(|a| concerts::artist.eq(a)),
        ))
        .returning(Concert::as_returning());
    crate::db::one(query, conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("concert"))
}

/// When a schedule's performance starts and when its sale runs. `None`: no such moment (the
/// pre-queue opens with the sale; the sale is open from now; it never closes before the show).
#[derive(Debug, Clone, Copy)]
pub struct SaleTimes {
    pub starts_at: DateTime<Utc>,
    pub prequeue_opens_at: Option<DateTime<Utc>>,
    pub sales_open_at: Option<DateTime<Utc>>,
    pub sales_close_at: Option<DateTime<Utc>>,
}

impl SaleTimes {
    /// The order every sale keeps: pre-queue ≤ opening < closing ≤ the show.
    fn check(&self) -> AppResult<()> {
        let in_order = |earlier: Option<DateTime<Utc>>, later: Option<DateTime<Utc>>, strict| match (
            earlier, later,
        ) {
            (Some(a), Some(b)) => {
                if strict {
                    a < b
                } else {
                    a <= b
                }
            }
            _ => true,
        };
        if !in_order(self.prequeue_opens_at, self.sales_open_at, false) {
            return Err(AppError::InvalidInput(
                "the pre-queue must open at or before the sale opens".into(),
            ));
        }
        if !in_order(self.sales_open_at, self.sales_close_at, true) {
            return Err(AppError::InvalidInput(
                "the sale must open before it closes".into(),
            ));
        }
        if !in_order(self.sales_close_at, Some(self.starts_at), false) {
            return Err(AppError::InvalidInput(
                "the sale must close at or before the performance starts".into(),
            ));
        }
        if !in_order(self.prequeue_opens_at, Some(self.starts_at), false)
            || !in_order(self.sales_open_at, Some(self.starts_at), true)
        {
            return Err(AppError::InvalidInput(
                "the sale must open before the performance starts".into(),
            ));
        }
        Ok(())
    }
}

/// Creates a performance of `concert_id`.
pub async fn create_schedule(
    conn: &mut AsyncPgConnection,
    concert_id: ConcertId,
    venue: &str,
    times: SaleTimes,
) -> AppResult<Schedule> {
    let venue = text("the venue", venue, 200)?;
    times.check()?;
    let new = NewSchedule {
        concert_id,
        starts_at: times.starts_at,
        venue,
        prequeue_opens_at: times.prequeue_opens_at,
        sales_open_at: times.sales_open_at,
        sales_close_at: times.sales_close_at,
    };
    let query = diesel::insert_into(schedules::table)
        .values(&new)
        .returning(Schedule::as_returning());
    crate::db::one(query, conn).await.map_err(|err| {
        if violates_foreign_key(&err, "schedules_concert_id_fkey") {
            AppError::NotFound("concert")
        } else {
            err.into()
        }
    })
}

/// A seat map as an organiser lays it out: sections, each with its rows, front first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatMap {
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub rows: Vec<Row>,
}

/// A row of `seats` seats numbered 1.. in the row, all of one grade and price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub label: String,
    pub seats: u32,
    pub grade: SeatGrade,
    pub price: i64,
}

/// One seat of a checked seat map, in its place.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Insertable)]
#[diesel(table_name = seats, check_for_backend(diesel::pg::Pg))]
struct Place {
    number: i32,
    section: String,
    row_label: String,
    seat_in_row: i32,
    grade: SeatGrade,
    price: i64,
}

impl SeatMap {
    /// Every seat of the map, numbered across the schedule in the order given (sections, rows,
    /// then seats), after checking the whole map: names and labels, no section or row given
    /// twice (two seats in one place), row sizes, prices and the total.
    fn places(&self) -> AppResult<Vec<Place>> {
        if self.sections.is_empty() {
            return Err(AppError::InvalidInput(
                "a seat map needs at least one section".into(),
            ));
        }
        let mut names = HashSet::new();
        let mut total = 0usize;
        for section in &self.sections {
            let name = text("a section's name", &section.name, 50)?;
            if !names.insert(name) {
                return Err(AppError::InvalidInput(format!(
                    "section {name:?} is given twice: its seats would overlap"
                )));
            }
            if section.rows.is_empty() {
                return Err(AppError::InvalidInput(format!(
                    "section {name:?} has no rows"
                )));
            }
            let mut labels = HashSet::new();
            for row in &section.rows {
                let label = text("a row's label", &row.label, 10)?;
                if !labels.insert(label) {
                    return Err(AppError::InvalidInput(format!(
                        "row {label:?} of section {name:?} is given twice: its seats would overlap"
                    )));
                }
                if row.seats == 0 || row.seats > MAX_SEATS_PER_ROW {
                    return Err(AppError::InvalidInput(format!(
                        "row {label:?} of section {name:?} must have 1 to {MAX_SEATS_PER_ROW} seats"
                    )));
                }
                if !(0..=MAX_PRICE).contains(&row.price) {
                    return Err(AppError::InvalidInput(format!(
                        "the price of row {label:?} of section {name:?} must be 0 to {MAX_PRICE} points"
                    )));
                }
                total += row.seats as usize;
                if total > MAX_SEATS {
                    return Err(AppError::InvalidInput(format!(
                        "a schedule may have at most {MAX_SEATS} seats"
                    )));
                }
            }
        }
        let mut places = Vec::with_capacity(total);
        for section in &self.sections {
            for row in &section.rows {
                for seat_in_row in 1..=row.seats as i32 {
                    places.push(Place {
                        number: places.len() as i32 + 1,
                        section: section.name.trim().to_owned(),
                        row_label: row.label.trim().to_owned(),
                        seat_in_row,
                        grade: row.grade,
                        price: row.price,
                    });
                }
            }
        }
        Ok(places)
    }
}

/// What laying out a seat map did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaidOut {
    pub schedule_id: ScheduleId,
    pub seats: i64,
    /// False when the schedule already had exactly this seat map (the call was a retry).
    pub created: bool,
}

/// Lays out the seat map of `schedule_id`, in one transaction. Idempotent: the same map again
/// changes nothing (`created: false`); another map on a schedule that has seats is refused with
/// `SEAT_MAP_EXISTS`, whatever happened to them.
pub async fn lay_out(
    conn: &mut AsyncPgConnection,
    schedule_id: ScheduleId,
    map: &SeatMap,
) -> AppResult<LaidOut> {
    let places = map.places()?;
    conn.transaction(async |conn| {
        // Lock the schedule: two organisers laying out the same schedule at once take turns,
        // and the second sees the first's seats.
        let locked = schedules::table
            .find(schedule_id)
            .select(schedules::id)
            .for_update();
        let found: Option<ScheduleId> = crate::db::one(locked, conn).await.optional()?;
        if found.is_none() {
            return Err(AppError::NotFound("schedule"));
        }
        let existing: Vec<Place> = seats::table
            .filter(seats::schedule_id.eq(schedule_id))
            .order(seats::number)
            .select((
                seats::number,
                seats::section,
                seats::row_label,
                seats::seat_in_row,
                seats::grade,
                seats::price,
            ))
            .load(conn)
            .await?;
        if !existing.is_empty() {
            return if existing == places {
                Ok(LaidOut {
                    schedule_id,
                    seats: existing.len() as i64,
                    created: false,
                })
            } else {
                Err(AppError::SeatMapExists(existing.len() as i64))
            };
        }
        for chunk in places.chunks(CHUNK) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|place| (seats::schedule_id.eq(schedule_id), place))
                .collect();
            diesel::insert_into(seats::table)
                .values(rows)
                .execute(conn)
                .await?;
        }
        Ok(LaidOut {
            schedule_id,
            seats: places.len() as i64,
            created: true,
        })
    })
    .await
}

/// Sets the price of every seat of `grade` in `schedule_id`, before its sale: refused with
/// `SALE_STARTED` once the sale opened or any of its seats was ever held. Returns how many seats
/// changed.
pub async fn set_price(
    conn: &mut AsyncPgConnection,
    schedule_id: ScheduleId,
    grade: SeatGrade,
    price: i64,
) -> AppResult<i64> {
    if !(0..=MAX_PRICE).contains(&price) {
        return Err(AppError::InvalidInput(format!(
            "the price must be 0 to {MAX_PRICE} points"
        )));
    }
    conn.transaction(async |conn| {
        let locked = schedules::table
            .find(schedule_id)
            .select(schedules::sales_open_at)
            .for_update();
        let found: Option<Option<DateTime<Utc>>> = crate::db::one(locked, conn).await.optional()?;
        let Some(opens) = found else {
            return Err(AppError::NotFound("schedule"));
        };
        if opens.is_none_or(|at| at <= Utc::now()) {
            return Err(AppError::SaleStarted(
                "the sale of this schedule has opened: its prices are fixed".into(),
            ));
        }
        let touched = reservations::table
            .filter(reservations::schedule_id.eq(schedule_id))
            .select(reservations::id);
        let held: bool = crate::db::one(diesel::select(diesel::dsl::exists(touched)), conn).await?;
        if held {
            return Err(AppError::SaleStarted(
                "seats of this schedule were already held: its prices are fixed".into(),
            ));
        }
        let changed = diesel::update(
            seats::table
                .filter(seats::schedule_id.eq(schedule_id))
                .filter(seats::grade.eq(grade))
                .filter(seats::status.eq(SeatStatus::Available)),
        )
        .set((
            seats::price.eq(price),
            seats::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
        Ok(changed as i64)
    })
    .await
}
