//! The queue holds its line: per-concert settings changed live, adaptive admission that backs off
//! when the booking path degrades, the sold-out rule, and slots freed by idleness and the backstop.

use std::time::{Duration, Instant};

use concert_reservation::error::AppError;
use concert_reservation::ids::ConcertId;
use concert_reservation::queue::settings::{self, Change};
use concert_reservation::queue::{QueueState, QueueToken};
use concert_reservation::seed::SeedOptions;
use diesel_async::SimpleAsyncConnection;
use serde_json::json;

use crate::helpers::ws::{connect, next_json, subscribe};
use crate::helpers::{CONCERT, Fan, TestApp, eventually, scalar, viewer};

/// The state of each fan's queue token, as a poll reads it.
async fn states(app: &TestApp, fans: &[Fan]) -> Vec<QueueState> {
    let mut states = Vec::new();
    for fan in fans {
        let token = fan.queue_token.as_deref().expect("a fan in line");
        let status = app.queue().status(viewer(fan.id), token).await.unwrap();
        states.push(status.state);
    }
    states
}

fn count(states: &[QueueState], state: QueueState) -> usize {
    states.iter().filter(|s| **s == state).count()
}

async fn set(app: &TestApp, change: Change) -> Result<settings::ConcertQueue, AppError> {
    settings::change(
        &mut app.db().await,
        app.queue().settings(),
        ConcertId(CONCERT),
        &change,
    )
    .await
}

/// Fans 1..=n enter the concert's queue.
async fn enter_all(app: &TestApp, users: std::ops::RangeInclusive<i64>) -> Vec<Fan> {
    let mut fans = Vec::new();
    for user in users {
        fans.push(app.enter_queue(user, CONCERT).await.expect("entering"));
    }
    fans
}

#[tokio::test(flavor = "multi_thread")]
async fn a_settings_change_applies_on_the_next_tick_and_a_bad_one_changes_nothing() {
    let app = TestApp::spawn().await;
    app.seed_catalogue(1, 1, 10).await;
    let fans = enter_all(&app, 1..=6).await;
    let admitter = app.admitter();
    let fast = Change {
        admit_per_second: Some(10_000.0),
        active_cap: Some(2),
        ..Change::default()
    };
    set(&app, fast).await.unwrap();
    admitter.tick_all().await.unwrap();
    assert_eq!(count(&states(&app, &fans).await, QueueState::Active), 2);

    let wider = Change {
        active_cap: Some(4),
        ..Change::default()
    };
    set(&app, wider).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    admitter.tick_all().await.unwrap();
    assert_eq!(count(&states(&app, &fans).await, QueueState::Active), 4);

    let paused = Change {
        active_cap: Some(6),
        paused: Some(true),
        ..Change::default()
    };
    set(&app, paused).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    admitter.tick_all().await.unwrap();
    assert_eq!(
        count(&states(&app, &fans).await, QueueState::Active),
        4,
        "a paused queue admits nobody"
    );
    let resumed = Change {
        paused: Some(false),
        ..Change::default()
    };
    set(&app, resumed).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    admitter.tick_all().await.unwrap();
    assert_eq!(count(&states(&app, &fans).await, QueueState::Active), 6);

    // A change with one bad value is refused whole.
    let half_bad = Change {
        admit_per_second: Some(5.0),
        active_cap: Some(0),
        ..Change::default()
    };
    let refused = set(&app, half_bad).await.unwrap_err();
    assert_eq!(refused.code(), "INVALID_INPUT");
    assert!(refused.to_string().contains("active cap"), "{refused}");
    let now = settings::show(
        &mut app.db().await,
        app.queue().settings(),
        ConcertId(CONCERT),
    )
    .await
    .unwrap();
    assert_eq!((now.admit_per_second, now.active_cap), (10_000.0, 6));
    let unknown = settings::show(&mut app.db().await, app.queue().settings(), ConcertId(99))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), "NOT_FOUND");
}

/// The operator's command: `queue set` refuses an out-of-range value with our message and leaves
/// the settings as they were; `queue show` prints them.
#[tokio::test(flavor = "multi_thread")]
async fn the_queue_command_shows_sets_and_refuses() {
    let app = TestApp::spawn().await;
    app.seed_catalogue(1, 1, 1).await;
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_concert-reservation"))
            .args(["queue"])
            .args(args)
            .env("DATABASE_URL", &app.config.database_url)
            .env("QUEUE_ACTIVE_CAP", "500")
            .output()
            .expect("the binary runs")
    };
    let set = run(&["set", "--concert", "1", "--active-cap", "40"]);
    assert!(set.status.success(), "{set:?}");
    let bad = run(&[
        "set",
        "--concert",
        "1",
        "--active-cap",
        "0",
        "--admit-per-second",
        "3",
    ]);
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("active cap must be between 1 and"),
        "{stderr}"
    );
    assert!(stderr.contains("INVALID_INPUT"), "{stderr}");
    let pause = run(&["pause", "--concert", "1"]);
    assert!(pause.status.success(), "{pause:?}");
    let shown = run(&["show", "--concert", "1"]);
    let stdout = String::from_utf8_lossy(&shown.stdout);
    assert!(stdout.contains("active_cap 40 (own)"), "{stdout}");
    assert!(stdout.contains("admit_per_second 50 (default)"), "{stdout}");
    assert!(stdout.contains("paused true"), "{stdout}");
    let unknown = run(&["show", "--concert", "7"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("NOT_FOUND"));
}

/// The database slowed on purpose (a table lock every hold waits on): holds run slow and the
/// booking limit refuses the rest, so the admitter halves the rate; once the path is healthy
/// again and fans wait, it climbs back.
#[tokio::test(flavor = "multi_thread")]
async fn adaptive_admission_backs_off_when_the_database_is_slowed_and_recovers() {
    let (app, fans) = TestApp::staged(40, 12, 1_000_000, |config| {
        config.booking_concurrency = 4;
        config.booking_latency_target_ms = 20;
        config.queue_admit_per_second = 100.0;
    })
    .await;
    // Everyone admitted stays; later fans wait (the backlog adaptive admission serves).
    let cap = Change {
        active_cap: Some(12),
        ..Change::default()
    };
    set(&app, cap).await.unwrap();
    enter_all(&app, 13..=20).await;

    let mut blocker = app.db().await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE seats IN SHARE ROW EXCLUSIVE MODE")
        .await
        .unwrap();
    let app = std::sync::Arc::new(app);
    let holds: Vec<_> = fans
        .iter()
        .cloned()
        .map(|fan| {
            let app = app.clone();
            tokio::spawn(async move { app.hold_best_available(&fan, 1).await })
        })
        .collect();
    eventually(
        "the holds wait on the lock",
        Duration::from_secs(5),
        async || scalar(&app, "SELECT count(*) AS n FROM pg_locks WHERE NOT granted").await >= 4,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    blocker.batch_execute("ROLLBACK").await.unwrap();
    let mut busy = 0;
    for hold in holds {
        if hold.await.unwrap().is_err_and(|code| code == "BUSY") {
            busy += 1;
        }
    }
    assert_eq!(busy, 8, "four slots, twelve holds");

    // The load reaches Redis within a second; the admitter reads the last two whole seconds
    // once a second.
    let admitter = app.admitter();
    let started = Instant::now();
    loop {
        admitter.tick_all().await.unwrap();
        let rate = admitter.rate_of(ConcertId(CONCERT)).unwrap();
        if rate < 100.0 {
            assert_eq!(rate, 50.0, "halved");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "never backed off"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        admitter.tick_all().await.unwrap();
        let rate = admitter.rate_of(ConcertId(CONCERT)).unwrap();
        if rate > 50.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "never recovered"
        );
    }
}

const STATUS: &str =
    "query($t: String!) { queueStatus(token: $t) { status position pollAfterSeconds } }";
const ENTER: &str = "mutation($c: ID!) { enterQueue(concertId: $c) { token status } }";

/// Sold out: when the last seat is held, the queue stops admitting, waiting fans read and are
/// pushed SOLD_OUT (keeping their place), nobody new enters, and an admitted fan's hold is
/// refused at once. When the hold runs out the queue reopens in the same order.
#[tokio::test(flavor = "multi_thread")]
async fn a_sold_out_concert_closes_its_queue_and_reopens_in_order_after_an_expiry() {
    let app = TestApp::spawn_with(|config| config.hold_ttl_seconds = 2).await;
    app.seed(SeedOptions {
        concerts: 1,
        schedules_per_concert: 1,
        seats_per_schedule: 2,
        users: 6,
        points: 1_000_000,
        reset: false,
    })
    .await;
    let admitter = app.admitter();
    let cap = Change {
        active_cap: Some(2),
        ..Change::default()
    };
    set(&app, cap).await.unwrap();
    let admitted = enter_all(&app, 1..=2).await;
    admitter.tick_all().await.unwrap();
    let waiting = enter_all(&app, 3..=4).await;
    assert_eq!(
        states(&app, &[admitted.clone(), waiting.clone()].concat()).await,
        [
            QueueState::Active,
            QueueState::Active,
            QueueState::Waiting,
            QueueState::Waiting
        ]
    );

    let mut socket = connect(
        &app,
        json!({ "Authorization": format!("Bearer {}", app.token_for(4)) }),
    )
    .await;
    assert_eq!(
        next_json(&mut socket).await.unwrap()["type"],
        "connection_ack"
    );
    subscribe(
        &mut socket,
        "1",
        "subscription($t: String!) { queueStatus(token: $t) { status position } }",
        json!({ "t": waiting[1].queue_token }),
    )
    .await;
    let mut pushed = async || {
        next_json(&mut socket).await.expect("an update")["payload"]["data"]["queueStatus"].clone()
    };
    assert_eq!(
        pushed().await,
        json!({ "status": "WAITING", "position": 2 })
    );

    app.hold_seats(&admitted[0], &[1, 2])
        .await
        .expect("the last two seats");
    admitter.tick_all().await.unwrap();

    let polled = app
        .graphql_as(3, STATUS, json!({ "t": waiting[0].queue_token }))
        .await;
    assert_eq!(
        polled["data"]["queueStatus"],
        json!({ "status": "SOLD_OUT", "position": 1, "pollAfterSeconds": 10 }),
        "{polled}"
    );
    assert_eq!(
        pushed().await,
        json!({ "status": "SOLD_OUT", "position": 2 })
    );
    let late = app.graphql_as(5, ENTER, json!({ "c": "1" })).await;
    assert_eq!(
        late["errors"][0]["extensions"]["code"], "SOLD_OUT",
        "{late}"
    );
    assert_eq!(
        app.hold_best_available(&admitted[1], 1).await.unwrap_err(),
        "SOLD_OUT"
    );
    let statements = app.statements_run();
    assert_eq!(
        app.hold_best_available(&admitted[1], 1).await.unwrap_err(),
        "SOLD_OUT"
    );
    assert_eq!(
        app.statements_run(),
        statements,
        "refused before the database"
    );

    // The hold runs out: the seats are free again, and the line is as it was.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    admitter.tick_all().await.unwrap();
    assert_eq!(
        pushed().await,
        json!({ "status": "WAITING", "position": 2 })
    );
    let polled = app
        .graphql_as(3, STATUS, json!({ "t": waiting[0].queue_token }))
        .await;
    assert_eq!(
        polled["data"]["queueStatus"],
        json!({ "status": "WAITING", "position": 1, "pollAfterSeconds": 1 }),
        "{polled}"
    );
    let entered = app.graphql_as(5, ENTER, json!({ "c": "1" })).await;
    assert_eq!(
        entered["data"]["enterQueue"]["status"], "WAITING",
        "{entered}"
    );
}

/// An admitted fan who holds nothing for QUEUE_ACTIVE_IDLE_SECONDS loses the slot; a fan who
/// holds keeps it until the hold ends (here: cancelled), then the idle time again.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_admitted_fan_loses_the_slot_and_a_holder_keeps_it() {
    let (app, fans) = TestApp::staged(5, 2, 1_000_000, |config| {
        config.queue_active_idle_seconds = 1
    })
    .await;
    let held = app.hold_best_available(&fans[0], 1).await.expect("a hold");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    app.admit(CONCERT, 0).await;
    assert_eq!(
        states(&app, &fans).await,
        [QueueState::Active, QueueState::Expired]
    );

    app.cancel_reservation(&fans[0], held.id)
        .await
        .expect("cancelled");
    app.admit(CONCERT, 0).await;
    assert_eq!(
        states(&app, &fans[..1]).await,
        [QueueState::Active],
        "idle time starts now"
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    app.admit(CONCERT, 0).await;
    assert_eq!(states(&app, &fans[..1]).await, [QueueState::Expired]);
}

/// With no consumer, the sweeper's backstop frees the seats of a hold that ran out, and the
/// slot of the fan who held them.
#[tokio::test(flavor = "multi_thread")]
async fn the_backstop_frees_the_slot_of_the_hold_it_frees() {
    let (app, fans) = TestApp::staged(5, 2, 1_000_000, |config| {
        config.hold_ttl_seconds = 1;
        config.expiry_backstop_seconds = 1;
    })
    .await;
    app.hold_best_available(&fans[0], 1).await.expect("a hold");
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let (expired, freed) = app.sweep_expired_holds().await;
    assert_eq!((expired, freed), (1, 1));
    assert_eq!(
        states(&app, &fans).await,
        [QueueState::Expired, QueueState::Active]
    );
}

/// The poll hint: 1 s for a fan about to be admitted, QUEUE_POLL_MAX_SECONDS further back.
#[tokio::test(flavor = "multi_thread")]
async fn the_poll_hint_is_short_near_the_front_and_longer_far_back() {
    let app = TestApp::spawn_with(|config| config.queue_poll_max_seconds = 3).await;
    let token = QueueToken::parse(&format!("1.{}", "a".repeat(32))).unwrap();
    let queue = app.queue();
    assert_eq!(
        queue.waiting_status(&token, 5, 50.0).poll_after_seconds,
        Some(1)
    );
    assert_eq!(
        queue.waiting_status(&token, 5_000, 50.0).poll_after_seconds,
        Some(3)
    );
    assert_eq!(
        queue.sold_out_status(&token, 5).poll_after_seconds,
        Some(15)
    );
}
