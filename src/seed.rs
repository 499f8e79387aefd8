//! Demo and load-test data: concerts with schedules and priced seats, and fans with points.

use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::account::{NewLedgerEntry, NewUser};
use crate::catalogue::{NewConcert, NewSchedule, NewSeat};
use crate::db::enums::{LedgerReason, SeatGrade};
use crate::db::schema::{concerts, point_ledger, schedules, seats, users};
use crate::ids::{ConcertId, ScheduleId, UserId};

/// Rows per INSERT: stays far below PostgreSQL's 65,535 bind parameters.
const CHUNK: usize = 5_000;

const DEMO_CONCERTS: &[(&str, &str)] = &[
    ("Midnight Echoes World Tour", "The Lanterns"),
    ("Symphony Under the Stars", "City Philharmonic"),
    ("Neon Pulse Live", "DJ Aurora"),
    ("Acoustic Evenings", "Mira Sol"),
    ("Stadium Anthems", "Northbound"),
];
const VENUES: &[&str] = &["Olympic Hall", "Riverside Arena", "Grand Theatre"];

/// How much to seed. Defaults give a small demo; load tests ask for more.
#[derive(Debug, Clone, clap::Args)]
pub struct SeedOptions {
    /// Concerts to create.
    #[arg(long, default_value_t = 3)]
    pub concerts: usize,
    /// Schedules (performances) per concert.
    #[arg(long, default_value_t = 2)]
    pub schedules_per_concert: usize,
    /// Seats per schedule.
    #[arg(long, default_value_t = 50)]
    pub seats_per_schedule: usize,
    /// Fans to create.
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Starting balance of each fan, in points (written to the ledger as a charge).
    #[arg(long, default_value_t = 1_000_000)]
    pub points: i64,
    /// Delete all existing data first. Without it, seeding a database that has concerts does nothing.
    #[arg(long)]
    pub reset: bool,
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self {
            concerts: 3,
            schedules_per_concert: 2,
            seats_per_schedule: 50,
            users: 100,
            points: 1_000_000,
            reset: false,
        }
    }
}

/// What a seed run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedSummary {
    pub concerts: usize,
    pub schedules: usize,
    pub seats: usize,
    pub users: usize,
    /// True when the database already had data and nothing was written.
    pub skipped: bool,
}

/// Seeds in one transaction: a failure leaves the database as it was.
pub async fn seed(
    conn: &mut AsyncPgConnection,
    options: &SeedOptions,
) -> anyhow::Result<SeedSummary> {
    conn.transaction(async |conn| seed_in_transaction(conn, options).await)
        .await
}

async fn seed_in_transaction(
    conn: &mut AsyncPgConnection,
    options: &SeedOptions,
) -> anyhow::Result<SeedSummary> {
    if options.reset {
        diesel::sql_query(
            "TRUNCATE outbox, idempotency_keys, payments, reservation_seats, point_ledger, \
             reservations, seats, schedules, queue_settings, concerts, users RESTART IDENTITY",
        )
        .execute(conn)
        .await?;
    } else {
        let existing: i64 = crate::db::one(concerts::table.count(), conn).await?;
        if existing > 0 {
            return Ok(SeedSummary {
                skipped: true,
                ..SeedSummary::default()
            });
        }
    }

    let new_concerts: Vec<NewConcert<'_>> = (0..options.concerts)
        .map(|i| {
            let (title, artist) = DEMO_CONCERTS[i % DEMO_CONCERTS.len()];
            NewConcert { title, artist }
        })
        .collect();
    let concert_ids: Vec<ConcertId> = diesel::insert_into(concerts::table)
        .values(&new_concerts)
        .returning(concerts::id)
        .get_results(conn)
        .await?;

    let first_show = Utc::now() + Duration::days(30);
    let new_schedules: Vec<NewSchedule<'_>> = concert_ids
        .iter()
        .enumerate()
        .flat_map(|(c, &concert_id)| {
            (0..options.schedules_per_concert).map(move |s| NewSchedule {
                concert_id,
                starts_at: first_show + Duration::days((c * 7 + s) as i64) + Duration::hours(19),
                venue: VENUES[(c + s) % VENUES.len()],
            })
        })
        .collect();
    let schedule_ids: Vec<ScheduleId> = diesel::insert_into(schedules::table)
        .values(&new_schedules)
        .returning(schedules::id)
        .get_results(conn)
        .await?;

    let new_seats: Vec<NewSeat> = schedule_ids
        .iter()
        .flat_map(|&schedule_id| {
            (1..=options.seats_per_schedule).map(move |number| {
                let (grade, price) = grade_and_price(number, options.seats_per_schedule);
                NewSeat {
                    schedule_id,
                    number: number as i32,
                    grade,
                    price,
                }
            })
        })
        .collect();
    for chunk in new_seats.chunks(CHUNK) {
        diesel::insert_into(seats::table)
            .values(chunk)
            .execute(conn)
            .await?;
    }

    let new_users: Vec<NewUser> = (1..=options.users)
        .map(|i| NewUser {
            name: format!("fan-{i}"),
            points: options.points,
        })
        .collect();
    for chunk in new_users.chunks(CHUNK) {
        let ids: Vec<UserId> = diesel::insert_into(users::table)
            .values(chunk)
            .returning(users::id)
            .get_results(conn)
            .await?;
        if options.points > 0 {
            let entries: Vec<NewLedgerEntry> = ids
                .into_iter()
                .map(|user_id| NewLedgerEntry {
                    user_id,
                    delta: options.points,
                    reason: LedgerReason::Charge,
                    reservation_id: None,
                    balance_after: options.points,
                })
                .collect();
            diesel::insert_into(point_ledger::table)
                .values(&entries)
                .execute(conn)
                .await?;
        }
    }

    Ok(SeedSummary {
        concerts: concert_ids.len(),
        schedules: schedule_ids.len(),
        seats: new_seats.len(),
        users: new_users.len(),
        skipped: false,
    })
}

/// Front rows are the best: 10 % VIP, 20 % R, 30 % S, the rest A.
fn grade_and_price(number: usize, total: usize) -> (SeatGrade, i64) {
    let share = number * 100 / total.max(1);
    match share {
        0..=10 => (SeatGrade::Vip, 150_000),
        11..=30 => (SeatGrade::R, 120_000),
        31..=60 => (SeatGrade::S, 90_000),
        _ => (SeatGrade::A, 60_000),
    }
}
