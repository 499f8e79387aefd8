//! The scheduled opening (issue 15): fans who come before the sale opens wait in a pre-queue, the
//! admitter shuffles them into the line once at the opening, nobody is admitted before it, and
//! later fans join behind in arrival order. Against real PostgreSQL and Redis.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use crate::helpers::{TestApp, code};

const ORGANISER: i64 = 900;

const ENTER: &str = "mutation($concert: ID!) { enterQueue(concertId: $concert) { \
    token status position opensAt pollAfterSeconds } }";
const STATUS: &str =
    "query($token: String!) { queueStatus(token: $token) { status position opensAt } }";
const OPENING: &str = "query($concert: ID!) { queueOpening(concertId: $concert) { \
    salesOpenAt openedAt seed fansInPrequeue fansShuffled fansAfterOpening } }";

/// A concert with one schedule of `seats` seats whose pre-queue opens `prequeue_in` from now
/// and whose sale opens `opens_in` from now, created as an organiser would. Returns its id.
async fn scheduled_sale(
    app: &TestApp,
    prequeue_in: chrono::Duration,
    opens_in: chrono::Duration,
    seats: i64,
) -> i64 {
    let concert = app
        .graphql_as_organiser(
            ORGANISER,
            "mutation { createConcert(title: \"Opening Night\", artist: \"The Lanterns\") { id } }",
            json!({}),
        )
        .await;
    let concert = concert["data"]["createConcert"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no concert: {concert}"))
        .to_owned();
    let now = Utc::now();
    let schedule = app
        .graphql_as_organiser(
            ORGANISER,
            "mutation($input: NewScheduleInput!) { createSchedule(input: $input) { id } }",
            json!({ "input": {
                "concertId": concert,
                "venue": "Olympic Hall",
                "startsAt": (now + chrono::Duration::days(30)).to_rfc3339(),
                "prequeueOpensAt": (now + prequeue_in).to_rfc3339(),
                "salesOpenAt": (now + opens_in).to_rfc3339(),
                "salesCloseAt": (now + chrono::Duration::days(29)).to_rfc3339(),
            } }),
        )
        .await;
    let schedule = schedule["data"]["createSchedule"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no schedule: {schedule}"))
        .to_owned();
    let laid_out = app
        .graphql_as_organiser(
            ORGANISER,
            "mutation($schedule: ID!, $sections: [SectionInput!]!) { \
             layOutSeats(scheduleId: $schedule, sections: $sections) { seats } }",
            json!({ "schedule": schedule, "sections": [{ "name": "Floor", "rows": [
                { "label": "A", "seats": seats, "grade": "R", "price": 1000 } ] }] }),
        )
        .await;
    assert!(laid_out.get("errors").is_none(), "{laid_out}");
    concert.parse().unwrap()
}

async fn enter(app: &TestApp, user: i64, concert: i64) -> Value {
    app.graphql_as(user, ENTER, json!({ "concert": concert.to_string() }))
        .await
}

async fn status_of(app: &TestApp, user: i64, token: &str) -> String {
    let body = app
        .graphql_as(user, STATUS, json!({ "token": token }))
        .await;
    body["data"]["queueStatus"]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("no status: {body}"))
        .to_owned()
}

/// Users in line order: each token's place, from Redis.
async fn line_of(app: &TestApp, tokens: &[(i64, String)]) -> Vec<i64> {
    let mut placed = Vec::new();
    for (user, token) in tokens {
        let seq = app
            .sequence_of(token)
            .await
            .unwrap_or_else(|| panic!("fan {user} has no place after the opening"));
        placed.push((seq, *user));
    }
    placed.sort_unstable();
    let seqs: Vec<u64> = placed.iter().map(|(seq, _)| *seq).collect();
    let mut distinct = seqs.clone();
    distinct.dedup();
    assert_eq!(distinct, seqs, "two fans share a place");
    placed.into_iter().map(|(_, user)| user).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn fans_wait_in_a_pre_queue_then_take_the_places_of_the_recorded_shuffle() {
    let app = TestApp::spawn().await;
    let opens_in = chrono::Duration::seconds(3);
    let concert = scheduled_sale(&app, -chrono::Duration::minutes(1), opens_in, 10).await;
    let opens_at = Utc::now() + opens_in;

    let mut tokens = Vec::new();
    for user in 1..=20 {
        let body = enter(&app, user, concert).await;
        let entered = &body["data"]["enterQueue"];
        assert_eq!(entered["status"], "PREQUEUE", "{body}");
        assert!(
            entered["position"].is_null(),
            "no place before the opening: {body}"
        );
        let told = chrono::DateTime::parse_from_rfc3339(entered["opensAt"].as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc);
        assert!((told - opens_at).num_seconds().abs() <= 1, "{body}");
        let poll = entered["pollAfterSeconds"].as_u64().unwrap();
        assert!((1..=3).contains(&poll), "ask again at the opening: {body}");
        tokens.push((user, entered["token"].as_str().unwrap().to_owned()));
    }
    // Entering again keeps the token (and does not enter twice).
    let again = enter(&app, 1, concert).await;
    assert_eq!(again["data"]["enterQueue"]["token"], tokens[0].1.as_str());

    // Nobody is admitted or placed before the opening, however often the admitter ticks.
    for _ in 0..5 {
        app.admitter().tick_all().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (user, token) in &tokens {
        assert_eq!(status_of(&app, *user, token).await, "PREQUEUE");
        assert_eq!(app.sequence_of(token).await, None);
    }
    assert!(app.opening_record(concert).await.is_none());

    // After the opening time, before the shuffle ran: behind the pre-queue.
    while Utc::now() < opens_at + chrono::Duration::milliseconds(200) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let late = enter(&app, 21, concert).await;
    assert_eq!(late["data"]["enterQueue"]["status"], "PREQUEUE", "{late}");
    let late_token = late["data"]["enterQueue"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    app.admitter().tick_all().await.unwrap();
    let record = app
        .opening_record(concert)
        .await
        .expect("the opening is recorded");
    let arrivals: Vec<i64> = (1..=20).collect();
    assert_eq!(
        record.arrivals, arrivals,
        "the shuffle's input is the arrival order"
    );
    assert_eq!(record.fans_shuffled, Some(20));
    assert_eq!(record.fans_after_opening, Some(1));
    assert!(record.opened_at.is_some());

    // The line is the recorded shuffle of the arrivals, then the late fan.
    let mut everyone = tokens.clone();
    everyone.push((21, late_token.clone()));
    let line = line_of(&app, &everyone).await;
    let expected: Vec<i64> = record.line().into_iter().map(|user| user.0).collect();
    assert_eq!(line[..20], expected[..]);
    assert_eq!(
        line[20], 21,
        "a fan after the opening time is placed behind the shuffled ones"
    );
    assert_ne!(
        line[..20],
        arrivals[..],
        "shuffled (1 chance in 20! of the same order)"
    );

    // A fan after the opening joins the line directly, at its end.
    let after = enter(&app, 22, concert).await;
    assert_eq!(after["data"]["enterQueue"]["status"], "WAITING", "{after}");
    let after_token = after["data"]["enterQueue"]["token"].as_str().unwrap();
    assert_eq!(app.sequence_of(after_token).await, Some(22));

    // The admitter admits from the head of the shuffled line; the organiser reads the audit.
    let first = tokens.iter().find(|(user, _)| *user == line[0]).unwrap();
    assert_eq!(status_of(&app, first.0, &first.1).await, "ACTIVE");
    let audit = app
        .graphql_as_organiser(
            ORGANISER,
            OPENING,
            json!({ "concert": concert.to_string() }),
        )
        .await;
    let audit = &audit["data"]["queueOpening"];
    assert_eq!(audit["seed"], record.seed.to_string());
    assert_eq!(audit["fansInPrequeue"], 20);
    assert_eq!(audit["fansShuffled"], 20);
    assert_eq!(audit["fansAfterOpening"], 1);
    let fan = app
        .graphql_as(5, OPENING, json!({ "concert": concert.to_string() }))
        .await;
    assert_eq!(code(&fan), "FORBIDDEN");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_queue_refuses_fans_before_its_pre_queue_and_after_its_sales() {
    let app = TestApp::spawn().await;
    let concert = scheduled_sale(
        &app,
        chrono::Duration::minutes(30),
        chrono::Duration::hours(1),
        2,
    )
    .await;
    let early = enter(&app, 1, concert).await;
    assert_eq!(code(&early), "SALE_NOT_OPEN", "{early}");
    let extensions = &early["errors"][0]["extensions"];
    let prequeue =
        chrono::DateTime::parse_from_rfc3339(extensions["prequeueOpensAt"].as_str().unwrap())
            .unwrap();
    let opens =
        chrono::DateTime::parse_from_rfc3339(extensions["opensAt"].as_str().unwrap()).unwrap();
    assert_eq!((opens - prequeue).num_minutes(), 30, "{early}");

    // Every sale of a concert closed: nothing to queue for.
    let mut conn = app.db().await;
    diesel::sql_query(
        "WITH concert AS (INSERT INTO concerts (title, artist) VALUES ('Last Night', 'Band') \
         RETURNING id) INSERT INTO schedules (concert_id, starts_at, venue, sales_open_at, \
         sales_close_at) SELECT id, now() + interval '1 day', 'Hall', now() - interval '2 hours', \
         now() - interval '1 hour' FROM concert",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let fresh: i64 = crate::helpers::scalar(&app, "SELECT max(id) AS n FROM concerts").await;
    let closed = enter(&app, 2, fresh).await;
    assert_eq!(code(&closed), "SALE_CLOSED", "{closed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_admitters_open_the_pre_queue_exactly_once() {
    let app = TestApp::spawn().await;
    let opens_in = chrono::Duration::seconds(2);
    let concert = scheduled_sale(&app, -chrono::Duration::minutes(1), opens_in, 5).await;
    let opens_at = Utc::now() + opens_in;
    let mut tokens = Vec::new();
    for user in 1..=40 {
        let body = enter(&app, user, concert).await;
        tokens.push((
            user,
            body["data"]["enterQueue"]["token"]
                .as_str()
                .unwrap()
                .to_owned(),
        ));
    }
    let first = app.admitter();
    let second = app.another_admitter();
    let deadline = opens_at + chrono::Duration::seconds(2);
    tokio::join!(tick_until(first, deadline), tick_until(&second, deadline));

    let openings: i64 = crate::helpers::scalar(
        &app,
        &format!("SELECT count(*) AS n FROM queue_openings WHERE concert_id = {concert}"),
    )
    .await;
    assert_eq!(openings, 1, "one opening, one seed");
    let record = app.opening_record(concert).await.unwrap();
    assert_eq!(record.fans_shuffled, Some(40));
    let line = line_of(&app, &tokens).await;
    let expected: Vec<i64> = record.line().into_iter().map(|user| user.0).collect();
    assert_eq!(line, expected, "the line is the one recorded shuffle");
}

async fn tick_until(
    admitter: &concert_reservation::queue::admitter::Admitter,
    deadline: chrono::DateTime<Utc>,
) {
    while Utc::now() < deadline {
        admitter.tick_all().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Over 240 openings of three fans each, every one of the six orders of the line comes up about
/// equally often (chi-square, 5 degrees of freedom, under 20.5: its 0.1 % critical value). The
/// fans enter in the same order each time, so an opening that kept (or favoured) arrival order
/// fails by far.
#[tokio::test(flavor = "multi_thread")]
async fn every_order_of_the_pre_queue_is_equally_likely_at_the_opening() {
    let app = TestApp::spawn().await;
    let runs = 240;
    let opens_in = chrono::Duration::seconds(3);
    let opens_at = Utc::now() + opens_in;
    let mut conn = app.db().await;
    diesel::sql_query(format!(
        "WITH concert AS (INSERT INTO concerts (title, artist) \
             SELECT 'Opening ' || n, 'Band' FROM generate_series(1, {runs}) AS n RETURNING id), \
         schedule AS (INSERT INTO schedules (concert_id, starts_at, venue, prequeue_opens_at, \
             sales_open_at, sales_close_at) \
             SELECT id, now() + interval '30 days', 'Hall', now() - interval '1 minute', \
             '{opens}'::timestamptz, now() + interval '29 days' FROM concert RETURNING id) \
         INSERT INTO seats (schedule_id, number, grade, price, status, section, row_label, seat_in_row) \
             SELECT id, 1, 'R', 1000, 'AVAILABLE', 'Floor', 'A', 1 FROM schedule",
        opens = opens_at.to_rfc3339(),
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let first_concert: i64 =
        crate::helpers::scalar(&app, "SELECT min(id) AS n FROM concerts").await;
    let concerts: Vec<i64> = (first_concert..first_concert + runs).collect();

    let mut entered: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
    for &concert in &concerts {
        for user in 1..=3 {
            let token = app.enter_in_process(user, concert, Some(opens_at)).await;
            entered.entry(concert).or_default().push((user, token));
        }
    }
    app.admitter().tick_all().await.unwrap();
    while Utc::now() < opens_at {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.admitter().tick_all().await.unwrap();

    let mut orders: HashMap<Vec<i64>, u32> = HashMap::new();
    for concert in &concerts {
        let line = line_of(&app, &entered[concert]).await;
        *orders.entry(line).or_default() += 1;
    }
    assert_eq!(orders.len(), 6, "every order occurs: {orders:?}");
    let expected = f64::from(runs as u32) / 6.0;
    let chi_square: f64 = orders
        .values()
        .map(|&seen| (f64::from(seen) - expected).powi(2) / expected)
        .sum();
    assert!(chi_square < 20.5, "chi-square {chi_square:.1}: {orders:?}");
}

/// A subscriber in the pre-queue is pushed PREQUEUE, then, only after the opening, its place or
/// its admission: the running admitter opens the line by itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_is_pushed_out_of_the_pre_queue_at_the_opening() {
    use crate::helpers::ws::{connect, next_json, subscribe};

    let app = TestApp::spawn_with(|config| {
        config.queue_tick_ms = 100;
        config.queue_admit_per_second = 10.0;
    })
    .await;
    let opens_in = chrono::Duration::seconds(2);
    let concert = scheduled_sale(&app, -chrono::Duration::minutes(1), opens_in, 3).await;
    let opens_at = Utc::now() + opens_in;
    let entered = enter(&app, 7, concert).await;
    let token = entered["data"]["enterQueue"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut socket = connect(
        &app,
        json!({ "Authorization": format!("Bearer {}", app.token_for(7)) }),
    )
    .await;
    assert_eq!(
        next_json(&mut socket).await.unwrap()["type"],
        "connection_ack"
    );
    let query = "subscription($t: String!) { queueStatus(token: $t) { status position opensAt } }";
    subscribe(&mut socket, "1", query, json!({ "t": token })).await;
    let mut updates = Vec::new();
    while let Some(message) = next_json(&mut socket).await {
        let status = message["payload"]["data"]["queueStatus"].clone();
        let done = status["status"] == "ACTIVE";
        updates.push((Utc::now(), status));
        if done {
            break;
        }
    }
    let (first_at, first) = &updates[0];
    assert_eq!(first["status"], "PREQUEUE", "{updates:?}");
    assert!(*first_at < opens_at, "{updates:?}");
    let (active_at, last) = updates.last().unwrap();
    assert_eq!(last["status"], "ACTIVE", "{updates:?}");
    assert!(
        *active_at >= opens_at,
        "admitted only after the opening: {updates:?}"
    );
}
