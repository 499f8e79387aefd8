//! Refusing early: when the booking limit is full, a hold is answered `BUSY` with a retry hint at
//! once, instead of waiting for a pooled connection; the slot frees when the work ends.

use std::time::Duration;

use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use serde_json::json;

use crate::helpers::{TestApp, eventually, scalar};

const HOLD: &str = "mutation($s: ID!) { holdBestAvailable(scheduleId: $s, count: 1) { id } }";

#[tokio::test(flavor = "multi_thread")]
async fn a_full_booking_limit_answers_busy_at_once_with_a_retry_hint() {
    let (app, fans) = TestApp::staged(10, 2, 1_000_000, |config| {
        config.booking_concurrency = 1;
        config.busy_retry_after_ms = 200;
    })
    .await;
    let held = app.hold_seats(&fans[0], &[1]).await.expect("a hold");

    // Fan 0's payment takes the only slot and waits on a lock of fan 0's balance row.
    let mut blocker = app.db().await;
    blocker.batch_execute("BEGIN").await.unwrap();
    diesel::sql_query(format!(
        "SELECT 1 FROM users WHERE id = {} FOR UPDATE",
        fans[0].id
    ))
    .execute(&mut blocker)
    .await
    .unwrap();
    let app = std::sync::Arc::new(app);
    let paying = {
        let (app, fan) = (app.clone(), fans[0].clone());
        tokio::spawn(async move { app.pay(&fan, held.id, "overload-1").await })
    };
    eventually(
        "the payment waits on the lock",
        Duration::from_secs(5),
        async || scalar(&app, "SELECT count(*) AS n FROM pg_locks WHERE NOT granted").await > 0,
    )
    .await;

    let refused = app
        .graphql_with_headers(HOLD, json!({ "s": "1" }), &app.headers_of(&fans[1]))
        .await;
    let error = &refused["errors"][0];
    assert_eq!(error["extensions"]["code"], "BUSY", "{refused}");
    let hint = error["extensions"]["retryAfterMs"]
        .as_u64()
        .expect("a retry hint");
    assert!((100..=300).contains(&hint), "{refused}");

    blocker.batch_execute("ROLLBACK").await.unwrap();
    paying
        .await
        .unwrap()
        .expect("the payment completes once the lock is gone");
    app.hold_best_available(&fans[1], 1)
        .await
        .expect("the slot is free again");
}

/// A burst that takes every connection of the Redis pool for a whole checkout timeout is this
/// instance's saturation, not a Redis outage: `BUSY` with a retry hint, not `QUEUE_UNAVAILABLE`.
#[tokio::test(flavor = "multi_thread")]
async fn a_saturated_redis_pool_answers_busy_with_a_hint() {
    let app = TestApp::spawn_with(|config| config.redis_pool_size = 1).await;
    app.seed_catalogue(1, 1, 1).await;
    let entered = app.enter_queue(1, 1).await.expect("entering");
    let taken = app.take_redis_connection().await;
    let started = std::time::Instant::now();
    let refused = app
        .graphql_as(
            1,
            "query($t: String!) { queueStatus(token: $t) { status } }",
            json!({ "t": entered.queue_token }),
        )
        .await;
    let error = &refused["errors"][0];
    assert_eq!(error["extensions"]["code"], "BUSY", "{refused}");
    let hint = error["extensions"]["retryAfterMs"]
        .as_u64()
        .expect("a hint");
    assert!((500..=1_500).contains(&hint), "{refused}");
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(taken);
    assert!(
        app.enter_queue(1, 1).await.is_ok(),
        "served again once a connection is free"
    );
}

/// A statement PostgreSQL cancels at `statement_timeout` (here: a hold waiting on a table lock
/// held elsewhere) is the database saying it is too busy to answer in time: `BUSY`, never
/// `INTERNAL`, and nothing is written.
#[tokio::test(flavor = "multi_thread")]
async fn a_statement_cancelled_by_its_timeout_answers_busy() {
    let (app, fans) = TestApp::staged(4, 1, 1_000_000, |config| {
        config.database_statement_timeout_ms = 300;
        config.database_lock_timeout_ms = 10_000;
    })
    .await;
    let mut blocker = app.db().await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE seats IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let refused = app.hold_best_available(&fans[0], 1).await;
    blocker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(refused.unwrap_err(), "BUSY");
    assert_eq!(
        scalar(&app, "SELECT count(*) AS n FROM reservations").await,
        0
    );
    app.hold_best_available(&fans[0], 1)
        .await
        .expect("the hold succeeds once the lock is gone");
}

/// After PostgreSQL drops every connection (a restart, a failover), the next requests get fresh
/// ones: a pooled connection whose socket the database closed is never handed to a request.
#[tokio::test(flavor = "multi_thread")]
async fn connections_the_database_dropped_cost_no_request() {
    let (app, fans) = TestApp::staged(8, 6, 1_000_000, |_| {}).await;
    // Several pooled connections, all open.
    for held in
        futures::future::join_all(fans[..3].iter().map(|fan| app.hold_best_available(fan, 1))).await
    {
        held.expect("a hold before");
    }
    let dropped = scalar(
        &app,
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
          WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .await;
    assert!(dropped >= 1, "the server had connections open");
    // The server's connection tasks see the sockets close within milliseconds; a restart takes
    // far longer than this pause.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for fan in &fans[3..] {
        app.hold_best_available(fan, 1)
            .await
            .expect("a hold after the database dropped the server's connections");
    }
}
