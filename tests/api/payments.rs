//! Payments and points over the API: one charge per idempotency key even when the duplicates
//! arrive together, exact balances under 1,000 concurrent payments (in-process, see
//! `helpers::in_process`), nothing charged after expiry, and nobody pays or cancels someone
//! else's hold. The books are checked by `verify`.

use std::sync::Arc;
use std::time::Duration;

use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use serde_json::json;
use tokio::sync::{Barrier, Semaphore};

use crate::helpers::api::Receipt;
use crate::helpers::{Fan, Outcome, Reservation, TestApp, invariants, scalar};

struct Stage {
    app: Arc<TestApp>,
    fans: Vec<Fan>,
}

/// One schedule of `seats` seats; `fans` fans with `points` each and an ACTIVE queue token.
async fn stage(
    seats: usize,
    fans: usize,
    points: i64,
    customize: impl FnOnce(&mut concert_reservation::config::Config),
) -> Stage {
    let (app, fans) = TestApp::staged(seats, fans, points, customize).await;
    Stage {
        app: Arc::new(app),
        fans,
    }
}

impl Stage {
    fn fan(&self, user: i64) -> &Fan {
        &self.fans[user as usize - 1]
    }

    async fn hold(&self, user: i64, seat: i64) -> Reservation {
        self.app
            .hold_seats(self.fan(user), &[seat])
            .await
            .expect("the hold succeeds")
    }

    async fn pay(&self, user: i64, reservation: &Reservation, key: &str) -> Outcome<Receipt> {
        self.app.pay(self.fan(user), reservation.id, key).await
    }

    async fn balance(&self, user: i64) -> i64 {
        scalar(
            &self.app,
            &format!("SELECT points AS n FROM users WHERE id = {user}"),
        )
        .await
    }
}

#[derive(QueryableByName)]
struct Balance {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    user_id: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    points: i64,
}

/// Every balance equals the sum of its ledger, and no seat is SOLD without a confirmed payment
/// (with the rest of `verify`'s checks on payments and points).
async fn assert_books_balance(app: &TestApp) {
    app.assert_checks_pass(invariants::BOOKS).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_concurrent_payments_with_one_key_charge_once() {
    let stage = Arc::new(stage(1, 1, 1_000_000, |_| {}).await);
    let reservation = Arc::new(stage.hold(1, 1).await);
    let barrier = Arc::new(Barrier::new(10));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (stage, reservation, barrier) =
                (stage.clone(), reservation.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                stage.pay(1, &reservation, "order-42").await
            })
        })
        .collect();
    let mut receipts = Vec::new();
    for task in tasks {
        receipts.push(
            task.await
                .unwrap()
                .expect("every duplicate gets the receipt"),
        );
    }

    assert!(
        receipts.iter().all(|receipt| *receipt == receipts[0]),
        "one receipt, replayed: {receipts:?}"
    );
    assert_eq!(stage.balance(1).await, 1_000_000 - reservation.total_price);
    assert_eq!(
        scalar(&stage.app, "SELECT count(*) AS n FROM payments").await,
        1
    );
    assert_eq!(
        scalar(
            &stage.app,
            "SELECT count(*) AS n FROM point_ledger WHERE reason = 'PAYMENT'"
        )
        .await,
        1
    );
    assert_books_balance(&stage.app).await;
    // Paying ended the queue token and freed the slot: the token no longer passes the guard.
    let after = stage.app.hold_best_available(stage.fan(1), 1).await;
    assert_eq!(after.unwrap_err(), "QUEUE_TOKEN_EXPIRED");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_concurrent_payments_leave_every_balance_exact() {
    let stage = Arc::new(
        stage(1_000, 1_000, 1_000_000, |config| {
            config.database_pool_size = 24;
            // 1,000 payments queue for 24 connections; on a loaded 2-core CI box that can take
            // longer than the default 5 s pool wait. Every payment must still succeed.
            config.database_pool_timeout_ms = 60_000;
        })
        .await,
    );
    let mut reservations = Vec::new();
    for user in 1..=1_000 {
        reservations.push(Arc::new(stage.hold(user, user).await));
    }
    let barrier = Arc::new(Barrier::new(1_000));
    let tasks: Vec<_> = reservations
        .iter()
        .enumerate()
        .map(|(i, reservation)| {
            let (stage, reservation, barrier) =
                (stage.clone(), reservation.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                // In-process, as the resolver calls it: see helpers::in_process.
                stage
                    .app
                    .pay_in_process(stage.fan(i as i64 + 1), reservation.id, &format!("pay-{i}"))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("every payment succeeds");
    }

    let balances: Vec<(i64, i64)> =
        diesel::sql_query("SELECT id AS user_id, points FROM users ORDER BY id")
            .load::<Balance>(&mut stage.app.db().await)
            .await
            .unwrap()
            .into_iter()
            .map(|b| (b.user_id, b.points))
            .collect();
    let expected: Vec<(i64, i64)> = reservations
        .iter()
        .enumerate()
        .map(|(i, r)| (i as i64 + 1, 1_000_000 - r.total_price))
        .collect();
    assert_eq!(
        balances, expected,
        "every balance is exactly its start minus its one payment"
    );
    let charged: i64 = reservations.iter().map(|r| r.total_price).sum();
    assert_eq!(
        scalar(
            &stage.app,
            "SELECT COALESCE(sum(amount), 0)::bigint AS n FROM payments"
        )
        .await,
        charged
    );
    assert_eq!(
        scalar(
            &stage.app,
            "SELECT count(*) AS n FROM seats WHERE status = 'SOLD'"
        )
        .await,
        1_000
    );
    assert_eq!(
        scalar(
            &stage.app,
            "SELECT count(*) AS n FROM reservations WHERE status = 'CONFIRMED'"
        )
        .await,
        1_000
    );
    assert_books_balance(&stage.app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn paying_after_the_hold_expired_is_refused_and_charges_nothing() {
    let stage = stage(1, 1, 1_000_000, |config| config.hold_ttl_seconds = 1).await;
    let reservation = stage.hold(1, 1).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    assert_eq!(
        stage.pay(1, &reservation, "late").await.unwrap_err(),
        "HOLD_EXPIRED"
    );

    assert_eq!(stage.balance(1).await, 1_000_000);
    assert_eq!(
        scalar(&stage.app, "SELECT count(*) AS n FROM payments").await,
        0
    );
    assert_eq!(
        scalar(&stage.app, "SELECT count(*) AS n FROM idempotency_keys").await,
        0,
        "a refusal stores no key"
    );
    assert_books_balance(&stage.app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nobody_pays_or_cancels_someone_elses_hold() {
    let stage = stage(2, 2, 1_000_000, |_| {}).await;
    let mine = stage.hold(1, 1).await;

    let paid = stage.app.pay(stage.fan(2), mine.id, "steal").await;
    assert_eq!(paid.unwrap_err(), "NOT_OWNER");
    let cancelled = stage.app.cancel_reservation(stage.fan(2), mine.id).await;
    assert_eq!(cancelled.unwrap_err(), "NOT_OWNER");

    assert_eq!(stage.balance(2).await, 1_000_000);
    assert_eq!(
        scalar(
            &stage.app,
            &format!(
                "SELECT count(*) AS n FROM reservations WHERE id = {} AND status = 'HELD'",
                mine.id
            )
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn payment_refusals_have_clear_codes_and_change_nothing() {
    // Of three seats, seat 1 is grade S (90,000 points), seat 3 grade A (60,000).
    let stage = stage(3, 2, 70_000, |_| {}).await;
    let expensive = stage.hold(1, 1).await;
    assert_eq!(expensive.total_price, 90_000);
    assert_eq!(
        stage.pay(1, &expensive, "too-much").await.unwrap_err(),
        "INSUFFICIENT_POINTS"
    );
    assert_eq!(stage.balance(1).await, 70_000);

    let bad_keys = ["", &"k".repeat(129), "has space"];
    for key in bad_keys {
        assert_eq!(
            stage.pay(1, &expensive, key).await.unwrap_err(),
            "INVALID_INPUT",
            "{key:?}"
        );
    }

    let affordable = stage.hold(2, 3).await;
    stage.pay(2, &affordable, "first").await.expect("paid");
    // The same key for another request is refused; another key on a paid hold is ALREADY_PAID.
    let other = stage.app.charge_points(stage.fan(2), 10, "first").await;
    assert_eq!(other.unwrap_err(), "IDEMPOTENCY_KEY_REUSED");
    let replay = stage
        .pay(2, &affordable, "first")
        .await
        .expect("a retry replays even after the token ended");
    assert_eq!(replay.reservation_id, affordable.id);
    assert_books_balance(&stage.app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn charging_points_is_idempotent_and_bounded() {
    let stage = stage(1, 1, 0, |config| config.max_charge_points = 50_000).await;
    let (app, fan) = (&stage.app, stage.fan(1));

    let first = app.charge_points(fan, 30_000, "topup-1").await.unwrap();
    let again = app.charge_points(fan, 30_000, "topup-1").await.unwrap();
    assert_eq!(first, again);
    assert_eq!(stage.balance(1).await, 30_000);

    for amount in [0, -5, 50_001] {
        let refused = app.charge_points(fan, amount, "topup-2").await;
        assert_eq!(refused.unwrap_err(), "INVALID_INPUT", "{amount}");
    }
    // Concurrent distinct keys all land.
    let semaphore = Arc::new(Semaphore::new(10));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (app, fan, semaphore) = (app.clone(), fan.clone(), semaphore.clone());
            tokio::spawn(async move {
                let _permit = semaphore.acquire().await.unwrap();
                app.charge_points(&fan, 100, &format!("many-{i}"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(stage.balance(1).await, 32_000);
    assert_books_balance(&stage.app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_frees_the_seats_and_refunds_a_paid_booking() {
    let stage = stage(2, 1, 1_000_000, |_| {}).await;
    let (app, fan) = (&stage.app, stage.fan(1));
    let held = stage.hold(1, 1).await;
    app.cancel_reservation(fan, held.id)
        .await
        .expect("a hold is cancelled");
    assert_eq!(
        scalar(
            &stage.app,
            "SELECT count(*) AS n FROM seats WHERE status = 'AVAILABLE'"
        )
        .await,
        2
    );

    let booked = stage.hold(1, 2).await;
    stage.pay(1, &booked, "buy").await.unwrap();
    app.cancel_reservation(fan, booked.id)
        .await
        .expect("a booking is cancelled");
    assert_eq!(stage.balance(1).await, 1_000_000, "refunded");
    assert_eq!(
        scalar(
            &stage.app,
            "SELECT count(*) AS n FROM point_ledger WHERE reason = 'REFUND'"
        )
        .await,
        1
    );
    assert_eq!(
        scalar(
            &stage.app,
            "SELECT count(*) AS n FROM seats WHERE status = 'AVAILABLE'"
        )
        .await,
        2
    );
    let twice = app.cancel_reservation(fan, booked.id).await;
    assert_eq!(twice.unwrap_err(), "HOLD_CANCELLED");
    assert_books_balance(&stage.app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_journey_over_graphql() {
    let stage = stage(5, 1, 1_000_000, |_| {}).await;
    let app = &stage.app;
    let headers = app.headers_of(stage.fan(1));

    let held = app
        .graphql_with_headers(
            "mutation { holdBestAvailable(scheduleId: \"1\", count: 2) { id totalPrice } }",
            json!({}),
            &headers,
        )
        .await;
    let reservation_id = held["data"]["holdBestAvailable"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{held}"))
        .to_owned();
    let paid = app
        .graphql_with_headers(
            "mutation($r: ID!) { pay(reservationId: $r, idempotencyKey: \"k1\") { amount balanceAfter reservation { status } } }",
            json!({ "r": reservation_id }),
            &headers,
        )
        .await;
    assert!(paid.get("errors").is_none(), "{paid}");
    assert_eq!(paid["data"]["pay"]["reservation"]["status"], "CONFIRMED");

    let me = app
        .graphql_as(1, "{ me { points ledger { delta reason } reservations { status payment { amount } seats { number status } } } }", json!({}))
        .await;
    assert!(me.get("errors").is_none(), "{me}");
    let account = &me["data"]["me"];
    assert_eq!(account["points"], paid["data"]["pay"]["balanceAfter"]);
    assert_eq!(account["ledger"][0]["reason"], "PAYMENT");
    assert_eq!(
        account["reservations"][0]["payment"]["amount"],
        paid["data"]["pay"]["amount"]
    );
    // Five seats: row 1 is seat 1 (R), row 2 seats 2-3 (S): the pair sits together in row 2.
    assert_eq!(
        account["reservations"][0]["seats"],
        json!([{ "number": 2, "status": "SOLD" }, { "number": 3, "status": "SOLD" }])
    );

    let anonymous = app.graphql("{ me { points } }").await;
    assert_eq!(
        anonymous["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
}

/// A `pay` that outlives the request timeout is not cut off half-way: the client is told the
/// outcome is unknown (`TIMEOUT`), the payment still completes once, and a retry with the same
/// key returns its receipt.
#[tokio::test(flavor = "multi_thread")]
async fn a_payment_that_times_out_still_completes_once_and_replays() {
    let stage = stage(5, 1, 1_000_000, |config| {
        config.request_timeout_ms = 300;
        config.database_lock_timeout_ms = 10_000;
    })
    .await;
    let app = &stage.app;
    let held = stage.hold(1, 1).await;
    let before = stage.balance(1).await;

    // Another session holds the fan's balance row, so the payment waits past the timeout.
    let mut blocker = app.db().await;
    blocker
        .batch_execute("BEGIN; SELECT id FROM users WHERE id = 1 FOR UPDATE")
        .await
        .expect("the blocker locks the balance row");
    let headers = app.headers_of(stage.fan(1));
    let pay = "mutation($r: ID!) { pay(reservationId: $r, idempotencyKey: \"slow\") { amount balanceAfter } }";
    let variables = json!({ "r": held.id.to_string() });
    let late = app
        .graphql_with_headers(pay, variables.clone(), &headers)
        .await;
    assert_eq!(late["errors"][0]["extensions"]["code"], "TIMEOUT", "{late}");
    assert!(
        late["errors"][0]["message"]
            .as_str()
            .is_some_and(|message| message.contains("same idempotency key")),
        "{late}"
    );
    blocker
        .batch_execute("COMMIT")
        .await
        .expect("the blocker lets go");

    crate::helpers::eventually(
        "the timed-out payment completes",
        Duration::from_secs(10),
        async || {
            scalar(
                app,
                &format!(
                    "SELECT count(*) AS n FROM reservations WHERE id = {} AND status = 'CONFIRMED'",
                    held.id
                ),
            )
            .await
                == 1
        },
    )
    .await;
    let replay = app.graphql_with_headers(pay, variables, &headers).await;
    assert!(replay.get("errors").is_none(), "{replay}");
    let amount = replay["data"]["pay"]["amount"].as_i64().expect("an amount");
    assert_eq!(
        stage.balance(1).await,
        before - amount,
        "charged exactly once"
    );
    assert_eq!(
        scalar(app, "SELECT count(*) AS n FROM payments").await,
        1,
        "one payment"
    );
    assert_books_balance(app).await;
}

/// A payment needs one pooled connection: nothing inside its transaction waits for a second one
/// (with a cold cache that starved the pool under load: docs/results/payments.md).
#[tokio::test(flavor = "multi_thread")]
async fn a_payment_needs_only_one_pooled_connection() {
    let stage = stage(2, 1, 1_000_000, |config| {
        config.database_pool_size = 1;
        config.database_pool_timeout_ms = 1_000;
    })
    .await;
    let held = stage.hold(1, 1).await;
    let paid = stage.pay(1, &held, "one-connection").await;
    assert!(paid.is_ok(), "{paid:?}");
}
