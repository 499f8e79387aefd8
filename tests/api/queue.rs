//! The waiting queue against real Redis: FIFO under concurrency, rate and cap, re-entry, expiry,
//! abandonment, a single admitter, ownership, the hold guard, and failing closed.

use std::sync::Arc;
use std::time::Duration;

use crate::helpers::outage::Outage;
use crate::helpers::{TestApp, code, viewer};
use concert_reservation::error::AppError;
use concert_reservation::ids::ConcertId;
use concert_reservation::queue::{QueueState, QueueStatus};
use diesel_async::SimpleAsyncConnection;
use serde_json::{Value, json};
use tokio::sync::Barrier;

const ENTER: &str = "mutation($c: ID!) { enterQueue(concertId: $c) { token status position ahead estimatedWaitSeconds } }";
const STATUS: &str =
    "query($t: String!) { queueStatus(token: $t) { token status position activeUntil } }";

async fn app_with_concert(
    customize: impl FnOnce(&mut concert_reservation::config::Config),
) -> (TestApp, ConcertId) {
    let app = TestApp::spawn_with(customize).await;
    app.seed_catalogue(2, 1, 1).await;
    (app, ConcertId(1))
}

async fn enter(app: &TestApp, user: i64, concert: ConcertId) -> QueueStatus {
    app.queue()
        .enter(viewer(user), concert, None)
        .await
        .expect("entering succeeds")
}

async fn status(app: &TestApp, user: i64, token: &str) -> QueueStatus {
    app.queue()
        .status(viewer(user), token)
        .await
        .expect("status succeeds")
}

/// 100 fans press "enter" at the same instant: each gets a distinct place, and admission then
/// follows exactly those places.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_entries_are_admitted_in_fifo_order() {
    // The waiting room's limit (QUEUE_CONCURRENCY) would refuse part of this burst with BUSY;
    // here every fan gets in, to compare places with admissions.
    let (app, concert) = app_with_concert(|c| {
        c.queue_active_cap = 1_000;
        c.queue_concurrency = 1_000;
    })
    .await;
    let app = Arc::new(app);
    let barrier = Arc::new(Barrier::new(100));
    let tasks: Vec<_> = (1..=100)
        .map(|user| {
            let (app, barrier) = (app.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let body = app
                    .graphql_as(user, ENTER, json!({ "c": concert.to_string() }))
                    .await;
                assert!(body.get("errors").is_none(), "{body}");
                let ticket = &body["data"]["enterQueue"];
                (user, ticket["token"].as_str().unwrap().to_owned())
            })
        })
        .collect();
    let mut tickets = Vec::new();
    for task in tasks {
        tickets.push(task.await.unwrap());
    }
    // Positions as they stand after everyone entered.
    let mut by_position = Vec::new();
    for (user, token) in &tickets {
        by_position.push((
            status(&app, *user, token).await.position.unwrap(),
            *user,
            token.clone(),
        ));
    }
    by_position.sort();
    let positions: Vec<u64> = by_position.iter().map(|(p, _, _)| *p).collect();
    assert_eq!(
        positions,
        (1..=100).collect::<Vec<_>>(),
        "distinct places 1..=100"
    );

    let admitter = app.admitter();
    for round in 1..=4u64 {
        admitter
            .tick(concert, 25)
            .await
            .unwrap()
            .expect("the only admitter leads");
        for (position, user, token) in &by_position {
            let state = status(&app, *user, token).await.state;
            let expected = if *position <= round * 25 {
                QueueState::Active
            } else {
                QueueState::Waiting
            };
            assert_eq!(state, expected, "round {round}: position {position}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn admission_respects_the_rate_and_the_cap() {
    let (app, concert) = app_with_concert(|c| c.queue_active_cap = 25).await;
    for user in 1..=60 {
        enter(&app, user, concert).await;
    }
    let admitter = app.admitter();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let tick = admitter.tick(concert, 10).await.unwrap().unwrap();
        seen.push((tick.admitted, tick.active, tick.waiting));
    }
    assert_eq!(
        seen,
        vec![(10, 10, 50), (10, 20, 40), (5, 25, 35), (0, 25, 35)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admitter_loop_admits_at_the_configured_rate() {
    let (app, concert) = app_with_concert(|c| {
        c.queue_tick_ms = 100;
        c.queue_admit_per_second = 20.0;
        c.queue_active_cap = 1_000;
    })
    .await;
    for user in 1..=200 {
        enter(&app, user, concert).await;
    }
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let admitted = app.queue().enter(viewer(201), concert, None).await.unwrap();
    // 20/s for ~2 s: about 40 admitted. Bounds leave room for a slow machine, none for a runaway.
    let ahead = admitted.position.unwrap() - 1;
    let active = 200 - ahead;
    assert!(
        (20..=50).contains(&active),
        "{active} admitted in 2 s at 20/s"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"queue_wait_seconds_bucket{concert="1",le="600"}"#),
        "waits are bucketed in minutes: {metrics}"
    );
    assert!(
        metrics.contains(r#"queue_admissions_total{concert="1"}"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reentering_keeps_the_token_and_the_place() {
    let (app, concert) = app_with_concert(|_| {}).await;
    let _a = enter(&app, 1, concert).await;
    let b = enter(&app, 2, concert).await;
    let _c = enter(&app, 3, concert).await;

    let again = enter(&app, 2, concert).await;

    assert_eq!(again.token, b.token);
    assert_eq!(again.position, Some(2));
    // Another concert is another line.
    let elsewhere = enter(&app, 2, ConcertId(2)).await;
    assert_ne!(elsewhere.token, b.token);
    assert_eq!(elsewhere.position, Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_active_tokens_free_their_slots() {
    let (app, concert) = app_with_concert(|c| {
        c.queue_active_cap = 2;
        c.queue_active_ttl_seconds = 1;
    })
    .await;
    let a = enter(&app, 1, concert).await;
    let _b = enter(&app, 2, concert).await;
    let c = enter(&app, 3, concert).await;
    let admitter = app.admitter();
    admitter.tick(concert, 10).await.unwrap();
    assert_eq!(status(&app, 1, &a.token).await.state, QueueState::Active);
    assert_eq!(status(&app, 3, &c.token).await.position, Some(1));

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let tick = admitter.tick(concert, 10).await.unwrap().unwrap();

    assert_eq!(tick.expired, 2);
    assert_eq!(status(&app, 1, &a.token).await.state, QueueState::Expired);
    assert_eq!(status(&app, 3, &c.token).await.state, QueueState::Active);
}

#[tokio::test(flavor = "multi_thread")]
async fn absent_waiters_are_dropped_and_those_behind_move_up() {
    let (app, concert) = app_with_concert(|c| {
        c.queue_active_cap = 0; // nobody is admitted: only abandonment moves the line
        c.queue_waiting_grace_seconds = 1;
    })
    .await;
    let a = enter(&app, 1, concert).await;
    let _b = enter(&app, 2, concert).await;
    let c = enter(&app, 3, concert).await;
    assert_eq!(c.position, Some(3));

    // Only C keeps asking.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        status(&app, 3, &c.token).await;
    }
    let tick = app.admitter().tick(concert, 10).await.unwrap().unwrap();

    assert_eq!(tick.abandoned, 2);
    assert_eq!(status(&app, 1, &a.token).await.state, QueueState::Expired);
    assert_eq!(status(&app, 3, &c.token).await.position, Some(1));
    assert_eq!(
        tick.position_of(3),
        Some(1),
        "subscribers compute the same place from the tick"
    );
    // A comes back: a new token, at the back of the line.
    let back = enter(&app, 1, concert).await;
    assert_ne!(back.token, a.token);
    assert_eq!(back.position, Some(2));
}

/// An outage (Redis unreachable, or no instance ticking) costs waiting fans nothing: the time no
/// tick ran does not count against their grace period, so they keep their places in order. Once
/// ticks run again, the grace period applies as before.
#[tokio::test(flavor = "multi_thread")]
async fn waiting_fans_keep_their_places_across_an_outage() {
    let (app, concert) = app_with_concert(|c| {
        c.queue_active_cap = 0; // nobody is admitted: only abandonment moves the line
        c.queue_waiting_grace_seconds = 1;
    })
    .await;
    let fans = [
        enter(&app, 1, concert).await,
        enter(&app, 2, concert).await,
        enter(&app, 3, concert).await,
    ];
    let tick = app.admitter().tick(concert, 10).await.unwrap().unwrap();
    assert_eq!(tick.abandoned, 0);

    // The outage: no tick runs and no poll is seen for longer than a lease (2 s here) and
    // than the grace period.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let tick = app.admitter().tick(concert, 10).await.unwrap().unwrap();
    assert_eq!(tick.abandoned, 0, "nobody is dropped for the outage");
    for (place, (user, fan)) in (1..).zip(fans.iter()).enumerate() {
        let now = status(&app, user, &fan.token).await;
        assert_eq!(now.state, QueueState::Waiting);
        assert_eq!(
            now.position,
            Some(place as u64 + 1),
            "fan {user} keeps their place"
        );
    }

    // Ticking again, without polls: one grace period later they are dropped as usual.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let tick = app.admitter().tick(concert, 10).await.unwrap().unwrap();
    assert_eq!(tick.abandoned, 3);
}

/// The value of `family{concert="id"}` at `/metrics`.
async fn gauge(app: &TestApp, family: &str, concert: ConcertId) -> Option<f64> {
    let exposition = app.get("/metrics").await.text().await.unwrap();
    let series = format!("{family}{{concert=\"{}\"}} ", concert.0);
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map(|value| value.trim().parse().expect("a number"))
}

/// An instance that loses a concert's admitter lease stops exporting that line's size: its
/// gauges go to zero, so the dashboards (the maximum over instances) follow the lease holder.
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_without_the_lease_clears_its_queue_gauges() {
    let app = TestApp::spawn_with(|c| c.queue_active_cap = 0).await;
    // A concert id no other test uses: the metrics registry is shared by the tests' servers.
    app.db()
        .await
        .batch_execute("ALTER TABLE concerts ALTER COLUMN id RESTART WITH 910001")
        .await
        .unwrap();
    app.seed_catalogue(1, 1, 2).await;
    let concert = ConcertId(910_001);
    enter(&app, 1, concert).await;
    enter(&app, 2, concert).await;

    app.admitter().tick_all().await.expect("a tick");
    assert_eq!(gauge(&app, "queue_waiting", concert).await, Some(2.0));

    // Another instance holds the lease now.
    let mut redis = app.take_redis_connection().await;
    let _: () = redis::cmd("SET")
        .arg(app.redis_key(&format!("q:{{{}}}:lease", concert.0)))
        .arg("another-instance")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut *redis)
        .await
        .unwrap();
    app.admitter().tick_all().await.expect("a tick");
    assert_eq!(gauge(&app, "queue_waiting", concert).await, Some(0.0));
    assert_eq!(gauge(&app, "queue_active", concert).await, Some(0.0));
}

/// Two instances tick at the same moments: only the lease holder admits, never both.
#[tokio::test(flavor = "multi_thread")]
async fn two_admitters_never_double_admit() {
    let (app, concert) = app_with_concert(|c| c.queue_active_cap = 10_000).await;
    for user in 1..=300 {
        enter(&app, user, concert).await;
    }
    let first = Arc::new(app.another_admitter());
    let second = Arc::new(app.another_admitter());
    let mut admitted = 0;
    for _ in 0..20 {
        let (a, b) = tokio::join!(first.tick(concert, 5), second.tick(concert, 5));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(
            a.is_some() != b.is_some(),
            "exactly one admitter leads each tick"
        );
        admitted += a.or(b).unwrap().admitted;
    }
    assert_eq!(admitted, 100);
    let last = enter(&app, 301, concert).await;
    assert_eq!(last.position, Some(201), "300 entered, 100 admitted");

    // The leader stops; once its lease lapses the other takes over.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let takeover = second
        .tick(concert, 5)
        .await
        .unwrap()
        .or(first.tick(concert, 5).await.unwrap());
    assert_eq!(takeover.unwrap().admitted, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_answers_only_its_owner() {
    let (app, concert) = app_with_concert(|_| {}).await;
    let entered = app
        .graphql_as(1, ENTER, json!({ "c": concert.to_string() }))
        .await;
    let token = entered["data"]["enterQueue"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let own = app.graphql_as(1, STATUS, json!({ "t": token })).await;
    assert_eq!(own["data"]["queueStatus"]["status"], "WAITING", "{own}");

    let foreign = app.graphql_as(2, STATUS, json!({ "t": token })).await;
    assert_eq!(code(&foreign), "QUEUE_TOKEN_INVALID", "{foreign}");

    for bad in ["nonsense", "1.zz", "1.00000000000000000000000000000000"] {
        let body = app.graphql_as(1, STATUS, json!({ "t": bad })).await;
        assert_eq!(code(&body), "QUEUE_TOKEN_INVALID", "{bad}: {body}");
    }

    let anonymous = app.graphql_with(STATUS, json!({ "t": token })).await;
    assert_eq!(code(&anonymous), "UNAUTHENTICATED");
    let forged = app
        .graphql_with_headers(
            STATUS,
            json!({ "t": token }),
            &[("authorization", "Bearer abc.def.ghi".into())],
        )
        .await;
    assert_eq!(code(&forged), "UNAUTHENTICATED");

    let missing = app.graphql_as(1, ENTER, json!({ "c": "999" })).await;
    assert_eq!(code(&missing), "NOT_FOUND");
}

/// What holds and payments will check: an ACTIVE token of the caller, for that concert.
#[tokio::test(flavor = "multi_thread")]
async fn the_guard_needs_an_active_token_of_the_caller_for_the_concert() {
    let (app, concert) = app_with_concert(|c| c.queue_active_cap = 1).await;
    let queue = app.queue();
    let first = enter(&app, 1, concert).await;
    let second = enter(&app, 2, concert).await;

    let refused = |result: Result<_, AppError>| result.unwrap_err().code();
    assert_eq!(
        refused(queue.require_active(viewer(1), concert, None).await),
        "QUEUE_TOKEN_REQUIRED"
    );
    assert_eq!(
        refused(
            queue
                .require_active(viewer(1), concert, Some(&first.token))
                .await
        ),
        "QUEUE_NOT_ACTIVE"
    );

    let admitter = app.admitter();
    admitter.tick(concert, 10).await.unwrap();
    queue
        .require_active(viewer(1), concert, Some(&first.token))
        .await
        .expect("ACTIVE passes");
    assert_eq!(
        refused(
            queue
                .require_active(viewer(2), concert, Some(&first.token))
                .await
        ),
        "QUEUE_TOKEN_INVALID"
    );
    assert_eq!(
        refused(
            queue
                .require_active(viewer(1), ConcertId(2), Some(&first.token))
                .await
        ),
        "QUEUE_TOKEN_INVALID"
    );
    assert_eq!(
        refused(
            queue
                .require_active(viewer(2), concert, Some(&second.token))
                .await
        ),
        "QUEUE_NOT_ACTIVE"
    );

    // Completing a purchase ends the token and frees the slot for the next fan.
    assert!(queue.finish(&first.token).await.unwrap());
    assert_eq!(
        refused(
            queue
                .require_active(viewer(1), concert, Some(&first.token))
                .await
        ),
        "QUEUE_TOKEN_EXPIRED"
    );
    admitter.tick(concert, 10).await.unwrap();
    queue
        .require_active(viewer(2), concert, Some(&second.token))
        .await
        .expect("the next fan is admitted");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_queue_fails_closed_while_redis_is_down_and_recovers() {
    let redis_addr = "127.0.0.1:6379".parse().unwrap();
    let outage = Outage::relay_to(redis_addr).await;
    let url = format!("redis://{}", outage.addr);
    let (app, concert) = app_with_concert(move |c| c.redis_url = url).await;
    let vars = json!({ "c": concert.to_string() });
    let before = app.graphql_as(1, ENTER, vars.clone()).await;
    assert!(before.get("errors").is_none(), "{before}");

    outage.cut().await;
    let during = app.graphql_as(2, ENTER, vars.clone()).await;
    assert_eq!(code(&during), "QUEUE_UNAVAILABLE", "{during}");
    assert!(
        during["data"].is_null(),
        "nobody gets a token while the queue is down: {during}"
    );

    outage.restore();
    let mut recovered = Value::Null;
    for _ in 0..50 {
        recovered = app.graphql_as(2, ENTER, vars.clone()).await;
        if recovered.get("errors").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        recovered["data"]["enterQueue"]["position"], 2,
        "{recovered}"
    );
}
