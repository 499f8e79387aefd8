//! The integrity check behind `concert-reservation verify`: the promises of the data model, each
//! as one SQL query that returns the rows breaking it. Load tests run it after a run; an operator
//! can run it against a live database at any time.
//!
//! Every check runs in one `REPEATABLE READ READ ONLY` transaction, so all of them see the same
//! snapshot, and compares times with one instant read after that snapshot was taken: a hold that
//! ended just before the snapshot is never mistaken for a live one. Nothing is written.

use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde::Serialize;

/// Exit status of `verify` when a check failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit status of `verify` when the checks could not run (no database, bad SQL, unwritable file).
pub const EXIT_ERROR: i32 = 2;

/// How strict `verify` is and where it writes.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyOptions {
    /// Seconds a hold may stay past its expiry before a check fails: the sweeper should have
    /// expired it, and its backstop freed its seats. Keep it above EXPIRY_BACKSTOP_SECONDS plus
    /// EXPIRY_SWEEP_INTERVAL_MS.
    #[arg(long, default_value_t = 60)]
    pub grace_seconds: u32,
    /// Seconds an outbox row may stay unpublished before a check fails.
    #[arg(long, default_value_t = 30)]
    pub outbox_grace_seconds: u32,
    /// Most offending ids listed per check.
    #[arg(long, default_value_t = 10)]
    pub samples: u32,
    /// Also write the results to this file as JSON.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            grace_seconds: 60,
            outbox_grace_seconds: 30,
            samples: 10,
            json: None,
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Stable name, for scripts.
    pub name: &'static str,
    /// The promise checked, in words.
    pub description: &'static str,
    /// What the ids are ids of: `seat`, `reservation`, `user` or `outbox`.
    pub subject: &'static str,
    pub passed: bool,
    /// How many rows break the promise.
    pub count: i64,
    /// The lowest of their ids, at most `--samples`.
    pub sample: Vec<i64>,
}

/// Points in and out, over the whole database. `charged - paid + refunded = balances` follows
/// from `balances_match_ledger`; here for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName)]
pub struct PointTotals {
    /// Sum of CHARGE ledger entries (seeded balances included).
    #[diesel(sql_type = BigInt)]
    pub charged: i64,
    /// Points taken by payments (minus the sum of PAYMENT entries).
    #[diesel(sql_type = BigInt)]
    pub paid: i64,
    /// Sum of REFUND entries.
    #[diesel(sql_type = BigInt)]
    pub refunded: i64,
    /// Sum of all balances.
    #[diesel(sql_type = BigInt)]
    pub balances: i64,
}

/// Every check's outcome, as printed and as written to `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The instant the checks compare times with (database clock).
    pub checked_at: DateTime<Utc>,
    pub grace_seconds: u32,
    pub outbox_grace_seconds: u32,
    /// True when every check passed.
    pub passed: bool,
    pub checks: Vec<CheckResult>,
    pub points: PointTotals,
}

impl Report {
    /// The names of the checks that failed, in check order.
    pub fn failed(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|check| !check.passed)
            .map(|check| check.name)
            .collect()
    }

    /// The result of the check called `name`.
    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|check| check.name == name)
    }
}

/// One line per check (`ok` or `FAILED`, count, sample ids), then the point totals and a summary.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .checks
            .iter()
            .map(|check| check.name.len())
            .max()
            .unwrap_or(0);
        for check in &self.checks {
            let status = if check.passed { "ok" } else { "FAILED" };
            write!(f, "{status:<6}  {:<width$}  {:>6}", check.name, check.count)?;
            if !check.passed {
                let mut ids: Vec<String> = check.sample.iter().map(i64::to_string).collect();
                if check.count > ids.len() as i64 {
                    ids.push("...".into());
                }
                write!(
                    f,
                    "  {} ids: {}  ({})",
                    check.subject,
                    ids.join(", "),
                    check.description
                )?;
            }
            writeln!(f)?;
        }
        let PointTotals {
            charged,
            paid,
            refunded,
            balances,
        } = &self.points;
        writeln!(
            f,
            "points  charged {charged} - paid {paid} + refunded {refunded}; balances {balances}"
        )?;
        let failed = self.failed().len();
        if failed == 0 {
            write!(f, "verify: all {} checks passed", self.checks.len())
        } else {
            write!(f, "verify: {failed} of {} checks FAILED", self.checks.len())
        }
    }
}

/// The instant a check's `$2` stands for.
#[derive(Debug, Clone, Copy)]
enum Since {
    /// The checked instant itself.
    Now,
    /// The checked instant minus `--grace-seconds`.
    HoldGrace,
    /// The checked instant minus `--outbox-grace-seconds`.
    OutboxGrace,
}

/// A promise and the query for the rows that break it. The query returns the distinct ids of the
/// offenders as `id`; `$2` is the instant given by `since`.
struct Check {
    name: &'static str,
    description: &'static str,
    subject: &'static str,
    since: Since,
    sql: &'static str,
}

/// The checks, in the order they are reported.
const CHECKS: &[Check] = &[
    // The partial unique index reservation_seats_one_live_per_seat forbids it; its rows mirror
    // their reservation's status through a cascading FK. The hold path ends a past-due hold
    // before taking its seat, so even a HELD reservation past its expiry is counted.
    Check {
        name: "seats_not_double_booked",
        description: "no seat is in two HELD or CONFIRMED reservations (held twice, or sold twice)",
        subject: "seat",
        since: Since::Now,
        sql: "SELECT rs.seat_id AS id
              FROM reservation_seats rs JOIN reservations r ON r.id = rs.reservation_id
              WHERE r.status IN ('HELD', 'CONFIRMED')
              GROUP BY rs.seat_id HAVING count(*) > 1",
    },
    // A seat is SOLD exactly when a CONFIRMED reservation has it (payment sells, cancellation
    // frees). It is HELD with a future held_until exactly when a live hold has it, and then
    // held_until is that hold's expires_at. A HELD seat whose time ran out may still belong to a
    // HELD or EXPIRED reservation until the sweeper and consumer (or the backstop) get to it; that
    // is the design, not a fault.
    Check {
        name: "seat_status_matches_reservations",
        description: "a seat is SOLD iff a CONFIRMED reservation has it, HELD (unexpired) iff a live \
                      hold has it and until that hold's expiry; reservation_seats mirror their \
                      reservation's status",
        subject: "seat",
        since: Since::Now,
        sql: "SELECT s.id
              FROM seats s
              LEFT JOIN (
                  SELECT rs.seat_id,
                         bool_or(r.status = 'CONFIRMED') AS confirmed,
                         bool_or(r.status = 'HELD' AND r.expires_at > $2) AS live_hold,
                         max(r.expires_at) FILTER (WHERE r.status = 'HELD' AND r.expires_at > $2)
                             AS live_until,
                         bool_or(rs.status <> r.status) AS mirror_broken
                  FROM reservation_seats rs JOIN reservations r ON r.id = rs.reservation_id
                  GROUP BY rs.seat_id
              ) x ON x.seat_id = s.id
              WHERE (s.status = 'HELD') <> (s.held_until IS NOT NULL)
                 OR (s.status = 'SOLD') <> COALESCE(x.confirmed, false)
                 OR COALESCE(s.status = 'HELD' AND s.held_until > $2, false)
                        <> COALESCE(x.live_hold, false)
                 OR COALESCE(x.live_hold AND s.held_until IS DISTINCT FROM x.live_until, false)
                 OR COALESCE(x.mirror_broken, false)",
    },
    // reservations_one_hold_per_user_schedule (a partial unique index) forbids it.
    Check {
        name: "one_hold_per_fan_and_schedule",
        description: "no fan has two HELD reservations on one schedule",
        subject: "reservation",
        since: Since::Now,
        sql: "SELECT id
              FROM (SELECT id, count(*) OVER (PARTITION BY user_id, schedule_id) AS holds
                    FROM reservations WHERE status = 'HELD') h
              WHERE holds > 1",
    },
    // cancelSchedule withdraws every seat and cancels every hold and booking of a performance
    // in one transaction; nothing else withdraws a seat.
    Check {
        name: "cancelled_performances_closed",
        description: "a cancelled performance has only WITHDRAWN seats and no HELD or CONFIRMED \
                      reservation; a performance not cancelled has no WITHDRAWN seat",
        subject: "schedule",
        since: Since::Now,
        sql: "SELECT sc.id
              FROM schedules sc
              WHERE CASE WHEN sc.cancelled_at IS NOT NULL THEN
                        EXISTS (SELECT 1 FROM seats s
                                WHERE s.schedule_id = sc.id AND s.status <> 'WITHDRAWN')
                        OR EXISTS (SELECT 1 FROM reservations r
                                   WHERE r.schedule_id = sc.id AND r.status IN ('HELD', 'CONFIRMED'))
                    ELSE EXISTS (SELECT 1 FROM seats s
                                 WHERE s.schedule_id = sc.id AND s.status = 'WITHDRAWN')
                    END",
    },
    // Payment confirms; a cancelled paid booking keeps its payment (and gets a REFUND entry, see
    // ledger_matches_payments); HELD and EXPIRED reservations were never paid.
    Check {
        name: "confirmed_reservations_paid_once",
        description: "every CONFIRMED reservation has exactly one payment, by its fan; only \
                      CONFIRMED and (refunded) CANCELLED reservations have a payment",
        subject: "reservation",
        since: Since::Now,
        sql: "SELECT r.id
              FROM reservations r
              LEFT JOIN (
                  SELECT reservation_id, count(*) AS n, min(user_id) AS lo, max(user_id) AS hi
                  FROM payments GROUP BY reservation_id
              ) p ON p.reservation_id = r.id
              WHERE CASE r.status
                        WHEN 'CONFIRMED' THEN COALESCE(p.n, 0) <> 1
                        WHEN 'CANCELLED' THEN COALESCE(p.n, 0) > 1
                        ELSE p.n IS NOT NULL
                    END
                 OR p.lo <> r.user_id
                 OR p.hi <> r.user_id",
    },
    // A hold's total is the sum of its seats' prices; payment charges that total.
    Check {
        name: "payments_match_seat_prices",
        description: "a reservation's total is the sum of its seats' prices, and its payment is \
                      that total",
        subject: "reservation",
        since: Since::Now,
        sql: "SELECT DISTINCT r.id
              FROM reservations r
              LEFT JOIN (
                  SELECT rs.reservation_id, sum(s.price) AS price
                  FROM reservation_seats rs JOIN seats s ON s.id = rs.seat_id
                  GROUP BY rs.reservation_id
              ) seat ON seat.reservation_id = r.id
              LEFT JOIN payments p ON p.reservation_id = r.id
              WHERE r.total_price <> COALESCE(seat.price, 0)
                 OR p.amount <> r.total_price",
    },
    // Every balance change writes one ledger row in the same transaction, with the user's row
    // locked, so ledger ids follow the order of the changes and balance_after is a running sum.
    // users_points_non_negative (a CHECK) forbids a negative balance.
    Check {
        name: "balances_match_ledger",
        description: "every balance is the sum of its ledger, never negative, and each ledger \
                      entry's balance_after is the running sum",
        subject: "user",
        since: Since::Now,
        sql: "SELECT u.id
              FROM users u
              LEFT JOIN (
                  SELECT user_id, sum(delta) AS total, bool_or(balance_after <> running) AS broken
                  FROM (SELECT user_id, delta, balance_after,
                               sum(delta) OVER (PARTITION BY user_id ORDER BY id) AS running
                        FROM point_ledger) entries
                  GROUP BY user_id
              ) l ON l.user_id = u.id
              WHERE u.points < 0
                 OR u.points <> COALESCE(l.total, 0)
                 OR COALESCE(l.broken, false)",
    },
    // Points are conserved: they leave a balance only by paying (a PAYMENT entry per payment) and
    // come back only by cancelling a paid booking (a REFUND entry of what was paid). With
    // balances_match_ledger this gives charged - paid + refunded = sum of balances, per fan.
    Check {
        name: "ledger_matches_payments",
        description: "each fan's PAYMENT entries add up to their payments, and REFUND entries to \
                      their cancelled payments",
        subject: "user",
        since: Since::Now,
        sql: "WITH ledger AS (
                  SELECT user_id,
                         COALESCE(-sum(delta) FILTER (WHERE reason = 'PAYMENT'), 0) AS paid,
                         COALESCE(sum(delta) FILTER (WHERE reason = 'REFUND'), 0) AS refunded
                  FROM point_ledger GROUP BY user_id
              ), paid AS (
                  SELECT p.user_id,
                         sum(p.amount) AS paid,
                         COALESCE(sum(p.amount) FILTER (WHERE r.status = 'CANCELLED'), 0)
                             AS refunded
                  FROM payments p JOIN reservations r ON r.id = p.reservation_id
                  GROUP BY p.user_id
              )
              SELECT u.id
              FROM users u
              LEFT JOIN ledger l ON l.user_id = u.id
              LEFT JOIN paid p ON p.user_id = u.id
              WHERE COALESCE(l.paid, 0) <> COALESCE(p.paid, 0)
                 OR COALESCE(l.refunded, 0) <> COALESCE(p.refunded, 0)",
    },
    // The sweeper expires past-due holds every EXPIRY_SWEEP_INTERVAL_MS.
    Check {
        name: "expired_holds_swept",
        description: "no HELD reservation is past its expiry by more than --grace-seconds",
        subject: "reservation",
        since: Since::HoldGrace,
        sql: "SELECT id FROM reservations WHERE status = 'HELD' AND expires_at < $2",
    },
    // The consumer frees the seats of an expired hold within seconds; the sweeper's backstop
    // after EXPIRY_BACKSTOP_SECONDS if no consumer did. No seat is stuck.
    Check {
        name: "expired_seats_released",
        description: "no seat is still HELD more than --grace-seconds after its hold ran out",
        subject: "seat",
        since: Since::HoldGrace,
        sql: "SELECT id FROM seats WHERE status = 'HELD' AND held_until < $2",
    },
    // The relay publishes every OUTBOX_RELAY_INTERVAL_MS.
    Check {
        name: "outbox_drained",
        description: "no outbox row is unpublished for more than --outbox-grace-seconds",
        subject: "outbox",
        since: Since::OutboxGrace,
        sql: "SELECT id FROM outbox WHERE published_at IS NULL AND created_at < $2",
    },
];

#[derive(QueryableByName)]
struct Offenders {
    #[diesel(sql_type = BigInt)]
    count: i64,
    #[diesel(sql_type = Array<BigInt>)]
    sample: Vec<i64>,
}

#[derive(QueryableByName)]
struct SnapshotTime {
    #[diesel(sql_type = Timestamptz)]
    at: DateTime<Utc>,
}

/// Runs every check on one snapshot of the database and returns their results.
pub async fn verify(
    conn: &mut AsyncPgConnection,
    options: &VerifyOptions,
) -> anyhow::Result<Report> {
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run(async |conn| verify_in_snapshot(conn, options).await)
        .await
}

async fn verify_in_snapshot(
    conn: &mut AsyncPgConnection,
    options: &VerifyOptions,
) -> anyhow::Result<Report> {
    // The first statement takes the snapshot; clock_timestamp() is read after it, so anything the
    // snapshot shows happened before `at`.
    let at = crate::db::one::<_, SnapshotTime>(
        diesel::sql_query("SELECT clock_timestamp() AS at"),
        conn,
    )
    .await?
    .at;
    let mut checks = Vec::with_capacity(CHECKS.len());
    for check in CHECKS {
        let since = match check.since {
            Since::Now => at,
            Since::HoldGrace => at - Duration::seconds(options.grace_seconds.into()),
            Since::OutboxGrace => at - Duration::seconds(options.outbox_grace_seconds.into()),
        };
        let sql = format!(
            "WITH offending AS ({}) \
             SELECT (SELECT count(*) FROM offending) AS count, \
                    ARRAY(SELECT id FROM offending ORDER BY id LIMIT $1) AS sample",
            check.sql
        );
        let query = diesel::sql_query(sql)
            .bind::<BigInt, _>(i64::from(options.samples))
            .bind::<Timestamptz, _>(since);
        let offenders: Offenders = crate::db::one(query, conn)
            .await
            .map_err(|err| anyhow::anyhow!("check {}: {err}", check.name))?;
        checks.push(CheckResult {
            name: check.name,
            description: check.description,
            subject: check.subject,
            passed: offenders.count == 0,
            count: offenders.count,
            sample: offenders.sample,
        });
    }
    let totals = diesel::sql_query(
        "SELECT COALESCE(sum(delta) FILTER (WHERE reason = 'CHARGE'), 0)::bigint AS charged,
                COALESCE(-sum(delta) FILTER (WHERE reason = 'PAYMENT'), 0)::bigint AS paid,
                COALESCE(sum(delta) FILTER (WHERE reason = 'REFUND'), 0)::bigint AS refunded,
                (SELECT COALESCE(sum(points), 0) FROM users)::bigint AS balances
         FROM point_ledger",
    );
    let points: PointTotals = crate::db::one(totals, conn).await?;
    Ok(Report {
        checked_at: at,
        grace_seconds: options.grace_seconds,
        outbox_grace_seconds: options.outbox_grace_seconds,
        passed: checks.iter().all(|check| check.passed),
        checks,
        points,
    })
}

/// The `verify` command: connects, checks, prints the report (and writes `--json`), and returns
/// the exit status: 0 when every check passed, [`EXIT_FAILED`] when one failed, [`EXIT_ERROR`]
/// when the checks could not run or the JSON file could not be written.
pub async fn run(database_url: &str, options: &VerifyOptions) -> i32 {
    let report = match connect_and_verify(database_url, options).await {
        Ok(report) => report,
        Err(err) => {
            eprintln!("verify: could not run the checks: {err:#}");
            return EXIT_ERROR;
        }
    };
    println!("{report}");
    if let Some(path) = &options.json
        && let Err(err) = write_json(path, &report)
    {
        eprintln!("verify: could not write {}: {err:#}", path.display());
        return EXIT_ERROR;
    }
    if report.passed { 0 } else { EXIT_FAILED }
}

async fn connect_and_verify(database_url: &str, options: &VerifyOptions) -> anyhow::Result<Report> {
    let mut conn = AsyncPgConnection::establish(database_url).await?;
    verify(&mut conn, options).await
}

fn write_json(path: &std::path::Path, report: &Report) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(report)?)?;
    Ok(())
}
