//! `verify`, the integrity check: it passes after a realistic run through the real services, and
//! each check fails — alone — on a database corrupted with raw SQL to break exactly its promise.
//! Where the schema itself forbids a corruption (a unique index, a CHECK), the test drops that
//! constraint first in its own throw-away database, as only a faulty migration or a manual edit
//! could. The last test runs the real binary and reads its exit status.

use std::time::Duration;

use concert_reservation::verify::{self, Report, VerifyOptions};
use diesel_async::SimpleAsyncConnection;

use crate::helpers::{Fan, Reservation, TestApp};

/// Fans in every test: 1..=4, each with an ACTIVE queue token and 1,000,000 points.
const FANS: usize = 4;
const POINTS: i64 = 1_000_000;
/// Seats of the one schedule; seed prices: 1-2 R (120,000), 3-4 S (90,000), 5-8 A (60,000).
const SEATS: usize = 8;

async fn check(app: &TestApp, options: &VerifyOptions) -> Report {
    app.verify_with(options).await
}

/// Runs `sql` (one or more statements) on the test's database.
async fn corrupt(app: &TestApp, sql: &str) {
    app.db()
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|err| panic!("corrupting with {sql}: {err}"));
}

async fn hold(app: &TestApp, fans: &[Fan], user: i64, seats: &[i64]) -> Reservation {
    app.hold_seats(&fans[user as usize - 1], seats)
        .await
        .expect("the hold succeeds")
}

async fn pay(app: &TestApp, fans: &[Fan], user: i64, reservation: i64) {
    app.pay(
        &fans[user as usize - 1],
        reservation,
        &format!("order-{reservation}"),
    )
    .await
    .expect("the payment succeeds");
}

async fn cancel(app: &TestApp, fans: &[Fan], user: i64, reservation: i64) {
    app.cancel_reservation(&fans[user as usize - 1], reservation)
        .await
        .expect("the cancellation succeeds");
}

async fn charge(app: &TestApp, fans: &[Fan], user: i64, amount: i64, key: &str) {
    app.charge_points(&fans[user as usize - 1], amount, key)
        .await
        .expect("the charge succeeds");
}

/// A clean database with one of everything, made through the services:
/// fan 1 charged points and paid seat 1 (`paid`), fan 2 holds seat 2 (`held`), fan 3 paid for
/// seat 3 and cancelled (`refunded`), fan 4 held seat 4 and cancelled unpaid.
struct Booked {
    app: TestApp,
    paid: i64,
    held: i64,
}

async fn booked() -> Booked {
    let (app, fans) = TestApp::staged(SEATS, FANS, POINTS, |_| {}).await;
    charge(&app, &fans, 1, 50_000, "topup-1").await;
    let paid = hold(&app, &fans, 1, &[1]).await.id;
    pay(&app, &fans, 1, paid).await;
    let held = hold(&app, &fans, 2, &[2]).await.id;
    let refunded = hold(&app, &fans, 3, &[3]).await.id;
    pay(&app, &fans, 3, refunded).await;
    cancel(&app, &fans, 3, refunded).await;
    let unpaid = hold(&app, &fans, 4, &[4]).await.id;
    cancel(&app, &fans, 4, unpaid).await;
    let report = check(&app, &VerifyOptions::default()).await;
    assert!(report.passed, "the clean database passes:\n{report}");
    Booked { app, paid, held }
}

/// Asserts that exactly the check `name` failed, on the ids `sample`.
fn assert_only_failed(report: &Report, name: &str, sample: &[i64]) {
    assert_eq!(report.failed(), [name], "\n{report}");
    let failed = report.check(name).expect("the check exists");
    assert_eq!(failed.sample, sample, "\n{report}");
    assert_eq!(failed.count, sample.len() as i64, "\n{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_passes_after_a_realistic_run() {
    let (app, fans) = TestApp::staged(SEATS, FANS, POINTS, |config| {
        config.hold_ttl_seconds = 3;
    })
    .await;
    // A hold left to run out.
    let expiring = hold(&app, &fans, 4, &[5, 6]).await;
    charge(&app, &fans, 1, 50_000, "topup-1").await;
    let paid = hold(&app, &fans, 1, &[1, 2]).await;
    pay(&app, &fans, 1, paid.id).await;
    let refunded = hold(&app, &fans, 3, &[3]).await;
    pay(&app, &fans, 3, refunded.id).await;
    cancel(&app, &fans, 3, refunded.id).await;
    let dropped = hold(&app, &fans, 2, &[4]).await;
    cancel(&app, &fans, 2, dropped.id).await;
    let report = check(&app, &VerifyOptions::default()).await;
    assert!(report.passed, "with a live hold:\n{report}");

    let left = expiring.expires_at - chrono::Utc::now();
    tokio::time::sleep(left.to_std().unwrap_or_default() + Duration::from_millis(200)).await;
    let (expired, _) = app.sweep_expired_holds().await;
    assert_eq!(expired, 1);
    // A seat of the expired hold, still marked HELD, is free for the next fan at once.
    hold(&app, &fans, 2, &[6]).await;
    app.relay_outbox().await;

    let report = check(&app, &VerifyOptions::default()).await;
    assert!(report.passed, "after expiry:\n{report}");
    let paid_points = paid.total_price + refunded.total_price;
    assert_eq!(
        (
            report.points.charged,
            report.points.paid,
            report.points.refunded
        ),
        (
            FANS as i64 * POINTS + 50_000,
            paid_points,
            refunded.total_price
        )
    );
    assert_eq!(
        report.points.balances,
        report.points.charged - report.points.paid + report.points.refunded
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seat_sold_twice_fails_only_seats_not_double_booked() {
    let Booked { app, .. } = booked().await;
    // Fan 2 buys fan 1's seat too, paid and booked in full; only the partial unique index
    // reservation_seats_one_live_per_seat stood in the way.
    corrupt(
        &app,
        "DROP INDEX reservation_seats_one_live_per_seat;
         WITH r AS (
             INSERT INTO reservations (user_id, schedule_id, status, total_price, expires_at)
             SELECT 2, schedule_id, 'CONFIRMED', price, now() FROM seats WHERE id = 1
             RETURNING id, total_price
         ), rs AS (
             INSERT INTO reservation_seats (reservation_id, seat_id, status)
             SELECT id, 1, 'CONFIRMED' FROM r
         ), u AS (
             UPDATE users SET points = points - (SELECT total_price FROM r) WHERE id = 2
             RETURNING points
         ), l AS (
             INSERT INTO point_ledger (user_id, delta, reason, reservation_id, balance_after)
             SELECT 2, -r.total_price, 'PAYMENT', r.id, u.points FROM r, u
         )
         INSERT INTO payments (reservation_id, user_id, amount, idempotency_key)
         SELECT id, 2, total_price, 'twice' FROM r",
    )
    .await;

    let report = check(&app, &VerifyOptions::default()).await;

    assert_only_failed(&report, "seats_not_double_booked", &[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn seats_out_of_step_with_their_reservations_fail_only_seat_status_matches_reservations() {
    let Booked { app, held, .. } = booked().await;
    // Seat 1 is back on sale while its booking stands; seat 2 is free while fan 2's hold runs.
    corrupt(
        &app,
        "UPDATE seats SET status = 'AVAILABLE' WHERE id = 1;
         UPDATE seats SET status = 'AVAILABLE', held_until = NULL WHERE id = 2",
    )
    .await;

    let report = check(&app, &VerifyOptions::default()).await;

    assert_only_failed(&report, "seat_status_matches_reservations", &[1, 2]);

    // Then seat 2 is held again but a minute past its hold's expiry; seat 4's reservation_seats
    // row no longer mirrors its (cancelled) reservation, and seat 5 is AVAILABLE with a hold
    // expiry: only the cascading FK reservation_seats_reservation_fkey and the CHECK
    // seats_held_until_iff_held stood in the way of those two.
    corrupt(
        &app,
        &format!(
            "UPDATE seats SET status = 'HELD',
                 held_until = (SELECT expires_at FROM reservations WHERE id = {held})
                     + interval '1 minute'
             WHERE id = 2;
             ALTER TABLE reservation_seats DROP CONSTRAINT reservation_seats_reservation_fkey;
             UPDATE reservation_seats SET status = 'EXPIRED' WHERE seat_id = 4;
             ALTER TABLE seats DROP CONSTRAINT seats_held_until_iff_held;
             UPDATE seats SET held_until = now() + interval '1 minute' WHERE id = 5"
        ),
    )
    .await;

    let report = check(&app, &VerifyOptions::default()).await;

    assert_only_failed(&report, "seat_status_matches_reservations", &[1, 2, 4, 5]);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_holds_of_one_fan_fail_only_one_hold_per_fan_and_schedule() {
    let Booked { app, held, .. } = booked().await;
    // Fan 2 holds seat 5 as well, in a second hold on the same schedule, seat and hold in step;
    // only the partial unique index reservations_one_hold_per_user_schedule stood in the way.
    corrupt(
        &app,
        "DROP INDEX reservations_one_hold_per_user_schedule;
         WITH r AS (
             INSERT INTO reservations (user_id, schedule_id, status, total_price, expires_at)
             SELECT 2, schedule_id, 'HELD', price, now() + interval '5 minutes'
             FROM seats WHERE id = 5
             RETURNING id, expires_at
         ), rs AS (
             INSERT INTO reservation_seats (reservation_id, seat_id, status)
             SELECT id, 5, 'HELD' FROM r
         )
         UPDATE seats SET status = 'HELD', held_until = (SELECT expires_at FROM r) WHERE id = 5",
    )
    .await;

    let second = crate::helpers::scalar(&app, "SELECT max(id) AS n FROM reservations").await;

    let report = check(&app, &VerifyOptions::default()).await;

    assert_only_failed(&report, "one_hold_per_fan_and_schedule", &[held, second]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_booking_confirmed_without_payment_fails_only_confirmed_reservations_paid_once() {
    let Booked { app, held, .. } = booked().await;
    // Fan 2's hold is confirmed and its seat sold, but nothing was paid. (Deleting a payment
    // instead would also leave its PAYMENT ledger entry without a payment, which
    // ledger_matches_payments reports too.)
    corrupt(
        &app,
        &format!(
            "UPDATE reservations SET status = 'CONFIRMED' WHERE id = {held};
             UPDATE seats SET status = 'SOLD', held_until = NULL WHERE id = 2"
        ),
    )
    .await;

    let report = check(&app, &VerifyOptions::default()).await;

    assert_only_failed(&report, "confirmed_reservations_paid_once", &[held]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payment_of_an_unconfirmed_hold_fails_only_confirmed_reservations_paid_once() {
    let Booked { app, held, .. } = booked().await;
    // Fan 2 is charged for the hold (payment, ledger entry and balance in step), but the hold is
    // never confirmed.
    corrupt(
        &app,
        &format!(
            "WITH r AS (
                 SELECT id, user_id, total_price FROM reservations WHERE id = {held}
             ), u AS (
                 UPDATE users SET points = points - (SELECT total_price FROM r) WHERE id = 2
                 RETURNING points
             ), l AS (
                 INSERT INTO point_ledger (user_id, delta, reason, reservation_id, balance_after)
                 SELECT 2, -r.total_price, 'PAYMENT', r.id, u.points FROM r, u
             )
             INSERT INTO payments (reservation_id, user_id, amount, idempotency_key)
             SELECT id, user_id, total_price, 'unconfirmed' FROM r"
        ),
    )
    .await;

    let report = check(&app, &VerifyOptions::default()).await;

    assert_only_failed(&report, "confirmed_reservations_paid_once", &[held]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seat_repriced_after_its_sale_fails_only_payments_match_seat_prices() {
    let Booked { app, paid, .. } = booked().await;
    corrupt(&app, "UPDATE seats SET price = price + 1000 WHERE id = 1").await;

    let report = check(&app, &VerifyOptions::default()).await;

    assert_only_failed(&report, "payments_match_seat_prices", &[paid]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payment_below_the_price_fails_only_payments_match_seat_prices() {
    let Booked { app, paid, .. } = booked().await;
    // Fan 1 was charged 1,000 points less than the seats cost: payment, ledger entry (fan 1's
    // last) and balance agree with each other, not with the price.
    corrupt(
        &app,
        &format!(
            "UPDATE payments SET amount = amount - 1000 WHERE reservation_id = {paid};
             UPDATE point_ledger SET delta = delta + 1000, balance_after = balance_after + 1000
             WHERE reservation_id = {paid} AND reason = 'PAYMENT';
             UPDATE users SET points = points + 1000 WHERE id = 1"
        ),
    )
    .await;

    let report = check(&app, &VerifyOptions::default()).await;

    assert_only_failed(&report, "payments_match_seat_prices", &[paid]);
}

#[tokio::test(flavor = "multi_thread")]
async fn balances_off_their_ledger_or_negative_fail_only_balances_match_ledger() {
    let Booked { app, .. } = booked().await;
    // Fan 1 gains points without a ledger entry. Fan 2's first entry states a wrong
    // balance_after while the balance and the sum agree. Fan 4 goes below zero with a ledger that
    // agrees: only the CHECKs users_points_non_negative and point_ledger_balance_after_check
    // stood in the way, and only the "never negative" rule catches it.
    corrupt(
        &app,
        "UPDATE users SET points = points + 500 WHERE id = 1;
         UPDATE point_ledger SET balance_after = balance_after + 1
         WHERE id = (SELECT min(id) FROM point_ledger WHERE user_id = 2);
         ALTER TABLE users DROP CONSTRAINT users_points_non_negative;
         ALTER TABLE point_ledger DROP CONSTRAINT point_ledger_balance_after_check;
         WITH u AS (UPDATE users SET points = -1 WHERE id = 4 RETURNING points)
         INSERT INTO point_ledger (user_id, delta, reason, balance_after)
         SELECT 4, -1 - (SELECT sum(delta) FROM point_ledger WHERE user_id = 4), 'CHARGE', points
         FROM u",
    )
    .await;

    let report = check(&app, &VerifyOptions::default()).await;

    assert_only_failed(&report, "balances_match_ledger", &[1, 2, 4]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refund_of_a_booking_that_stands_fails_only_ledger_matches_payments() {
    let Booked { app, paid, .. } = booked().await;
    // Fan 1 is refunded (ledger and balance in step) while the booking stays CONFIRMED; fan 2
    // pays 100 points (ledger and balance in step) for nothing.
    corrupt(
        &app,
        "WITH u AS (UPDATE users SET points = points - 100 WHERE id = 2 RETURNING points)
         INSERT INTO point_ledger (user_id, delta, reason, balance_after)
         SELECT 2, -100, 'PAYMENT', points FROM u",
    )
    .await;
    corrupt(
        &app,
        &format!(
            "WITH r AS (
                 SELECT id, total_price FROM reservations WHERE id = {paid}
             ), u AS (
                 UPDATE users SET points = points + (SELECT total_price FROM r) WHERE id = 1
                 RETURNING points
             )
             INSERT INTO point_ledger (user_id, delta, reason, reservation_id, balance_after)
             SELECT 1, r.total_price, 'REFUND', r.id, u.points FROM r, u"
        ),
    )
    .await;

    let report = check(&app, &VerifyOptions::default()).await;

    assert_only_failed(&report, "ledger_matches_payments", &[1, 2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hold_the_sweeper_missed_fails_only_expired_holds_swept() {
    let Booked { app, held, .. } = booked().await;
    // Fan 2's hold ran out an hour ago and is still HELD. Its seat's own expiry is moved just
    // past, not an hour: a seat stuck that long is what expired_seats_released reports.
    corrupt(
        &app,
        &format!(
            "UPDATE reservations SET expires_at = now() - interval '1 hour' WHERE id = {held};
             UPDATE seats SET held_until = now() - interval '1 second' WHERE id = 2"
        ),
    )
    .await;

    let report = check(&app, &VerifyOptions::default()).await;

    assert_only_failed(&report, "expired_holds_swept", &[held]);
    let lenient = VerifyOptions {
        grace_seconds: 2 * 3600,
        ..VerifyOptions::default()
    };
    let report = check(&app, &lenient).await;
    assert!(report.passed, "within --grace-seconds:\n{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seat_nobody_released_fails_only_expired_seats_released() {
    let Booked { app, held, .. } = booked().await;
    // Fan 2's hold expired an hour ago, but neither a consumer nor the backstop freed its seat.
    corrupt(
        &app,
        &format!(
            "UPDATE reservations SET status = 'EXPIRED', expires_at = now() - interval '1 hour'
             WHERE id = {held};
             UPDATE seats SET held_until = now() - interval '1 hour' WHERE id = 2"
        ),
    )
    .await;

    let report = check(&app, &VerifyOptions::default()).await;

    assert_only_failed(&report, "expired_seats_released", &[2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_old_unpublished_outbox_row_fails_only_outbox_drained() {
    let Booked { app, .. } = booked().await;
    // The services' own events are unpublished too (no relay runs here), but young.
    corrupt(
        &app,
        "INSERT INTO outbox (event_type, partition_key, payload, created_at)
         VALUES ('seats.held', '1', '{}', now() - interval '1 hour')",
    )
    .await;
    let old = crate::helpers::scalar(&app, "SELECT max(id) AS n FROM outbox").await;

    let report = check(&app, &VerifyOptions::default()).await;

    assert_only_failed(&report, "outbox_drained", &[old]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_exits_0_when_clean_1_when_a_check_fails_and_2_without_a_database() {
    let Booked { app, .. } = booked().await;
    let json = std::env::temp_dir().join(format!("verify-{}.json", uuid::Uuid::new_v4()));
    let run = async |database_url: &str| {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_concert-reservation"))
            .arg("verify")
            .arg("--json")
            .arg(&json)
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "warn")
            .output()
            .await
            .expect("the binary runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.code(), stdout)
    };
    let written = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&json).expect("the JSON file is written"))
            .expect("the file is JSON")
    };

    let (status, stdout) = run(&app.config.database_url).await;
    assert_eq!(status, Some(0), "{stdout}");
    assert!(stdout.contains("verify: all 11 checks passed"), "{stdout}");
    assert_eq!(written()["passed"], true);

    corrupt(&app, "UPDATE users SET points = points + 500 WHERE id = 3").await;
    let (status, stdout) = run(&app.config.database_url).await;
    assert_eq!(status, Some(verify::EXIT_FAILED), "{stdout}");
    let line = stdout
        .lines()
        .find(|line| line.starts_with("FAILED"))
        .unwrap_or_else(|| panic!("a FAILED line in\n{stdout}"));
    assert!(
        line.contains("balances_match_ledger") && line.contains("user ids: 3"),
        "{line}"
    );
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok ")).count(), 10);
    let report = written();
    assert_eq!(report["passed"], false);
    let failed: Vec<_> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|check| check["passed"] == false)
        .map(|check| (check["name"].clone(), check["sample"].clone()))
        .collect();
    assert_eq!(
        failed,
        [(
            serde_json::json!("balances_match_ledger"),
            serde_json::json!([3])
        )]
    );
    let _ = std::fs::remove_file(&json);

    let (status, _) = run("postgres://postgres:postgres@127.0.0.1:1/nothing").await;
    assert_eq!(status, Some(verify::EXIT_ERROR));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_performance_with_a_live_booking_fails_only_cancelled_performances_closed() {
    let Booked { app, .. } = booked().await;
    // Marked cancelled without the rest of the cancellation: its seats and bookings untouched.
    corrupt(
        &app,
        "UPDATE schedules SET cancelled_at = now() WHERE id = 1",
    )
    .await;

    let report = check(&app, &VerifyOptions::default()).await;

    assert_only_failed(&report, "cancelled_performances_closed", &[1]);
}
