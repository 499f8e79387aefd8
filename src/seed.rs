//! Demo and load-test data: concerts with schedules and priced seats, and fans with points.

use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::account::{NewLedgerEntry, NewUser};
use crate::catalogue::organise::{self, Row, SaleTimes, SeatMap, Section};
use crate::db::enums::{LedgerReason, SeatGrade};
use crate::db::schema::{concerts, point_ledger, users};
use crate::ids::UserId;

/// Rows per INSERT: stays far below PostgreSQL's 65,535 bind parameters.
const CHUNK: usize = 5_000;
/// The most seats in a row of the demo seat map.
const SEATS_PER_ROW: u32 = 20;

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
             reservations, seats, schedules, queue_settings, queue_openings, concerts, users RESTART IDENTITY",
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

    // Concerts, schedules and seat maps go through the organiser's own operations.
    let mut concert_ids = Vec::with_capacity(options.concerts);
    for i in 0..options.concerts {
        let (title, artist) = DEMO_CONCERTS[i % DEMO_CONCERTS.len()];
        concert_ids.push(organise::create_concert(conn, title, artist).await?.id);
    }

    let first_show = Utc::now() + Duration::days(30);
    let map = seat_map(options.seats_per_schedule);
    let mut schedules = 0;
    let mut seats = 0;
    for (c, &concert_id) in concert_ids.iter().enumerate() {
        for s in 0..options.schedules_per_concert {
            let times = SaleTimes {
                starts_at: first_show + Duration::days((c * 7 + s) as i64) + Duration::hours(19),
                prequeue_opens_at: None,
                sales_open_at: None,
                sales_close_at: None,
            };
            let venue = VENUES[(c + s) % VENUES.len()];
            let schedule = organise::create_schedule(conn, concert_id, venue, times).await?;
            schedules += 1;
            if let Some(map) = &map {
                seats += organise::lay_out(conn, schedule.id, map).await?.seats as usize;
            }
        }
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
        schedules,
        seats,
        users: new_users.len(),
        skipped: false,
    })
}

/// The demo seat map of `seats` seats: one section, "Floor", front rows best (see
/// [`grade_and_price`]), rows of at most 20 seats, each of one grade; seats numbered 1..=`seats`
/// from the front. None for a schedule without seats.
fn seat_map(seats: usize) -> Option<SeatMap> {
    let mut rows: Vec<Row> = Vec::new();
    for number in 1..=seats {
        let (grade, price) = grade_and_price(number, seats);
        match rows.last_mut() {
            Some(row) if row.grade == grade && row.seats < SEATS_PER_ROW => row.seats += 1,
            _ => rows.push(Row {
                label: (rows.len() + 1).to_string(),
                seats: 1,
                grade,
                price,
            }),
        }
    }
    (!rows.is_empty()).then(|| SeatMap {
        sections: vec![Section {
            name: "Floor".into(),
            rows,
        }],
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
