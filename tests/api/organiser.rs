//! Organiser operations (issue 15): who may call them, what they create, and the bad input they
//! refuse as a whole, against real PostgreSQL.

use serde_json::{Value, json};

use crate::helpers::{TestApp, code, scalar};

const ORGANISER: i64 = 900;
const FAN: i64 = 901;

const CREATE_CONCERT: &str = "mutation($title: String!, $artist: String!) { \
    createConcert(title: $title, artist: $artist) { id title artist } }";
const CREATE_SCHEDULE: &str = "mutation($input: NewScheduleInput!) { createSchedule(input: $input) { \
    id venue startsAt prequeueOpensAt salesOpenAt salesCloseAt concert { id } } }";
const LAY_OUT: &str = "mutation($schedule: ID!, $sections: [SectionInput!]!) { \
    layOutSeats(scheduleId: $schedule, sections: $sections) { scheduleId seats created } }";
const SET_PRICE: &str = "mutation($schedule: ID!, $grade: SeatGrade!, $price: Int!) { \
    setSeatPrice(scheduleId: $schedule, grade: $grade, price: $price) }";
const SEATS: &str = "query($id: ID!) { schedule(id: $id) { seats { number grade price status } } }";

fn data<'a>(body: &'a Value, field: &str) -> &'a Value {
    assert!(body.get("errors").is_none(), "unexpected errors: {body}");
    &body["data"][field]
}

async fn new_concert(app: &TestApp) -> String {
    let body = app
        .graphql_as_organiser(
            ORGANISER,
            CREATE_CONCERT,
            json!({ "title": "Aurora Live", "artist": "The Lanterns" }),
        )
        .await;
    data(&body, "createConcert")["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A schedule of `concert` whose sale opens in an hour (prices may still change).
async fn new_schedule(app: &TestApp, concert: &str) -> String {
    let now = chrono::Utc::now();
    let input = json!({
        "concertId": concert,
        "venue": "Olympic Hall",
        "startsAt": (now + chrono::Duration::days(30)).to_rfc3339(),
        "prequeueOpensAt": (now + chrono::Duration::minutes(30)).to_rfc3339(),
        "salesOpenAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
        "salesCloseAt": (now + chrono::Duration::days(29)).to_rfc3339(),
    });
    let body = app
        .graphql_as_organiser(ORGANISER, CREATE_SCHEDULE, json!({ "input": input }))
        .await;
    data(&body, "createSchedule")["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Two sections: Floor (rows A and B) and Balcony (row A).
fn two_sections() -> Value {
    json!([
        { "name": "Floor", "rows": [
            { "label": "A", "seats": 4, "grade": "VIP", "price": 150000 },
            { "label": "B", "seats": 3, "grade": "R", "price": 120000 },
        ] },
        { "name": "Balcony", "rows": [
            { "label": "A", "seats": 2, "grade": "A", "price": 60000 },
        ] },
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn organiser_operations_refuse_fans_and_callers_without_a_token() {
    let app = TestApp::spawn().await;
    let operations = [
        (CREATE_CONCERT, json!({ "title": "T", "artist": "A" })),
        (
            "mutation { updateConcert(concertId: \"1\", title: \"T\") { id } }",
            json!({}),
        ),
        (
            LAY_OUT,
            json!({ "schedule": "1", "sections": two_sections() }),
        ),
        (
            SET_PRICE,
            json!({ "schedule": "1", "grade": "VIP", "price": 1 }),
        ),
        (
            "mutation { setQueueSettings(concertId: \"1\", paused: true) { paused } }",
            json!({}),
        ),
        ("{ queueSettings(concertId: \"1\") { paused } }", json!({})),
        (
            "{ capacityPlan(input: { seats: 50, fans: 10, bookingCapacity: 10 }) { activeCap } }",
            json!({}),
        ),
    ];
    for (query, variables) in operations {
        let as_fan = app.graphql_as(FAN, query, variables.clone()).await;
        assert_eq!(code(&as_fan), "FORBIDDEN", "{query}: {as_fan}");
        let anonymous = app.graphql_with(query, variables).await;
        assert_eq!(code(&anonymous), "UNAUTHENTICATED", "{query}: {anonymous}");
    }
    assert_eq!(scalar(&app, "select count(*) as n from concerts").await, 0);
    assert_eq!(
        scalar(&app, "select count(*) as n from queue_settings").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organiser_creates_a_concert_a_schedule_and_its_seat_map() {
    let app = TestApp::spawn().await;
    let concert = new_concert(&app).await;
    let renamed = app
        .graphql_as_organiser(
            ORGANISER,
            "mutation($id: ID!) { updateConcert(concertId: $id, title: \"Aurora Live II\") { title artist } }",
            json!({ "id": concert }),
        )
        .await;
    assert_eq!(
        data(&renamed, "updateConcert"),
        &json!({ "title": "Aurora Live II", "artist": "The Lanterns" })
    );

    let schedule = new_schedule(&app, &concert).await;
    let laid_out = app
        .graphql_as_organiser(
            ORGANISER,
            LAY_OUT,
            json!({ "schedule": schedule, "sections": two_sections() }),
        )
        .await;
    assert_eq!(
        data(&laid_out, "layOutSeats"),
        &json!({ "scheduleId": schedule, "seats": 9, "created": true })
    );

    // Fans see it through the public catalogue, numbered in the order laid out.
    let seats = app.graphql_with(SEATS, json!({ "id": schedule })).await;
    let seats = data(&seats, "schedule")["seats"]
        .as_array()
        .unwrap()
        .clone();
    let numbers: Vec<i64> = seats
        .iter()
        .map(|s| s["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, (1..=9).collect::<Vec<_>>());
    let grades: Vec<&str> = seats.iter().map(|s| s["grade"].as_str().unwrap()).collect();
    assert_eq!(
        grades,
        ["VIP", "VIP", "VIP", "VIP", "R", "R", "R", "A", "A"]
    );
    assert!(seats.iter().all(|s| s["status"] == "AVAILABLE"));
    let places = scalar(
        &app,
        "select count(*) as n from seats where (section, row_label, seat_in_row) in \
         (('Floor', 'A', 4), ('Floor', 'B', 3), ('Balcony', 'A', 2))",
    )
    .await;
    assert_eq!(
        places, 3,
        "each seat has its section, row and place in the row"
    );

    // The same map again (a retry) changes nothing; another map is refused.
    let again = app
        .graphql_as_organiser(
            ORGANISER,
            LAY_OUT,
            json!({ "schedule": schedule, "sections": two_sections() }),
        )
        .await;
    assert_eq!(data(&again, "layOutSeats")["created"], false);
    let other = app
        .graphql_as_organiser(
            ORGANISER,
            LAY_OUT,
            json!({ "schedule": schedule, "sections": [{ "name": "Floor", "rows": [
                { "label": "A", "seats": 5, "grade": "VIP", "price": 150000 } ] }] }),
        )
        .await;
    assert_eq!(code(&other), "SEAT_MAP_EXISTS", "{other}");
    assert_eq!(scalar(&app, "select count(*) as n from seats").await, 9);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_as_a_whole_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let concert = new_concert(&app).await;
    let schedule = new_schedule(&app, &concert).await;
    let row = |label: &str, seats: i64, price: i64| json!({ "label": label, "seats": seats, "grade": "S", "price": price });
    let bad_maps = [
        json!([{ "name": "Floor", "rows": [row("A", 10, 1), row("A", 5, 1)] }]),
        json!([{ "name": "Floor", "rows": [row("A", 10, 1)] }, { "name": " Floor ", "rows": [row("B", 1, 1)] }]),
        json!([{ "name": "Floor", "rows": [row("A", 10, 1), row("B", 3, -5)] }]),
        json!([{ "name": "Floor", "rows": [row("A", 0, 1)] }]),
        json!([{ "name": "Floor", "rows": [row("A", -3, 1)] }]),
        json!([{ "name": "Floor", "rows": [row("A", 1001, 1)] }]),
        json!([{ "name": "", "rows": [row("A", 1, 1)] }]),
        json!([{ "name": "Floor", "rows": [] }]),
        json!([]),
        json!([{ "name": "Floor", "rows": [row("A\u{0}", 1, 1)] }]),
    ];
    for sections in bad_maps {
        let body = app
            .graphql_as_organiser(
                ORGANISER,
                LAY_OUT,
                json!({ "schedule": schedule, "sections": sections }),
            )
            .await;
        assert_eq!(code(&body), "INVALID_INPUT", "{sections}: {body}");
    }
    assert_eq!(scalar(&app, "select count(*) as n from seats").await, 0);

    let unknown = app
        .graphql_as_organiser(
            ORGANISER,
            LAY_OUT,
            json!({ "schedule": "987654", "sections": two_sections() }),
        )
        .await;
    assert_eq!(code(&unknown), "NOT_FOUND", "{unknown}");

    let now = chrono::Utc::now();
    let at = |days: i64| (now + chrono::Duration::days(days)).to_rfc3339();
    let bad_schedules = [
        (
            json!({ "concertId": concert, "venue": "Hall", "startsAt": at(30), "salesOpenAt": at(10), "salesCloseAt": at(5) }),
            "INVALID_INPUT",
        ),
        (
            json!({ "concertId": concert, "venue": "Hall", "startsAt": at(30), "salesOpenAt": at(10), "prequeueOpensAt": at(11) }),
            "INVALID_INPUT",
        ),
        (
            json!({ "concertId": concert, "venue": "Hall", "startsAt": at(30), "salesCloseAt": at(31) }),
            "INVALID_INPUT",
        ),
        (
            json!({ "concertId": concert, "venue": "  ", "startsAt": at(30) }),
            "INVALID_INPUT",
        ),
        (
            json!({ "concertId": "987654", "venue": "Hall", "startsAt": at(30) }),
            "NOT_FOUND",
        ),
        (
            json!({ "concertId": "x", "venue": "Hall", "startsAt": at(30) }),
            "INVALID_INPUT",
        ),
    ];
    for (input, expected) in bad_schedules {
        let body = app
            .graphql_as_organiser(ORGANISER, CREATE_SCHEDULE, json!({ "input": input }))
            .await;
        assert_eq!(code(&body), expected, "{input}: {body}");
    }
    assert_eq!(scalar(&app, "select count(*) as n from schedules").await, 1);

    for (title, artist) in [("", "A"), ("T", &"x".repeat(201)[..]), ("T\u{7}", "A")] {
        let body = app
            .graphql_as_organiser(
                ORGANISER,
                CREATE_CONCERT,
                json!({ "title": title, "artist": artist }),
            )
            .await;
        assert_eq!(code(&body), "INVALID_INPUT", "{body}");
    }
    assert_eq!(scalar(&app, "select count(*) as n from concerts").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn prices_change_before_the_sale_and_not_once_it_opened() {
    let app = TestApp::spawn().await;
    let concert = new_concert(&app).await;
    let schedule = new_schedule(&app, &concert).await;
    app.graphql_as_organiser(
        ORGANISER,
        LAY_OUT,
        json!({ "schedule": schedule, "sections": two_sections() }),
    )
    .await;

    let repriced = app
        .graphql_as_organiser(
            ORGANISER,
            SET_PRICE,
            json!({ "schedule": schedule, "grade": "VIP", "price": 175000 }),
        )
        .await;
    assert_eq!(data(&repriced, "setSeatPrice"), 4);
    let seats = app.graphql_with(SEATS, json!({ "id": schedule })).await;
    let vip: Vec<i64> = data(&seats, "schedule")["seats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["grade"] == "VIP")
        .map(|s| s["price"].as_i64().unwrap())
        .collect();
    assert_eq!(vip, [175000; 4], "the seat map shows the new price at once");

    let negative = app
        .graphql_as_organiser(
            ORGANISER,
            SET_PRICE,
            json!({ "schedule": schedule, "grade": "VIP", "price": -1 }),
        )
        .await;
    assert_eq!(code(&negative), "INVALID_INPUT");

    // A schedule whose sale is open (no opening time) keeps its prices.
    let open = app
        .graphql_as_organiser(
            ORGANISER,
            CREATE_SCHEDULE,
            json!({ "input": { "concertId": concert, "venue": "Hall",
                "startsAt": (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339() } }),
        )
        .await;
    let open = data(&open, "createSchedule")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = app
        .graphql_as_organiser(
            ORGANISER,
            SET_PRICE,
            json!({ "schedule": open, "grade": "VIP", "price": 1 }),
        )
        .await;
    assert_eq!(code(&refused), "SALE_STARTED", "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn organisers_read_and_change_a_concerts_queue_settings() {
    let app = TestApp::spawn().await;
    let concert = new_concert(&app).await;
    let set = "mutation($id: ID!, $rate: Float, $cap: Int, $paused: Boolean) { \
        setQueueSettings(concertId: $id, admitPerSecond: $rate, activeCap: $cap, paused: $paused) { \
        concertId admitPerSecond activeCap paused } }";
    let changed = app
        .graphql_as_organiser(
            ORGANISER,
            set,
            json!({ "id": concert, "rate": 12.5, "cap": 300, "paused": true }),
        )
        .await;
    assert_eq!(
        data(&changed, "setQueueSettings"),
        &json!({ "concertId": concert, "admitPerSecond": 12.5, "activeCap": 300, "paused": true })
    );
    let shown = app
        .graphql_as_organiser(
            ORGANISER,
            "query($id: ID!) { queueSettings(concertId: $id) { admitPerSecond activeCap paused } }",
            json!({ "id": concert }),
        )
        .await;
    assert_eq!(
        data(&shown, "queueSettings"),
        &json!({ "admitPerSecond": 12.5, "activeCap": 300, "paused": true })
    );
    for variables in [
        json!({ "id": concert, "rate": -1.0 }),
        json!({ "id": concert, "cap": 0 }),
        json!({ "id": concert, "cap": -4 }),
    ] {
        let body = app.graphql_as_organiser(ORGANISER, set, variables).await;
        assert_eq!(code(&body), "INVALID_INPUT", "{body}");
    }
    let unknown = app
        .graphql_as_organiser(ORGANISER, set, json!({ "id": "987654", "paused": false }))
        .await;
    assert_eq!(code(&unknown), "NOT_FOUND");
}

/// Two organisers lay out the same schedule at once with different maps: one map wins whole,
/// the other is told `SEAT_MAP_EXISTS`, and no seat of the loser is written.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_seat_maps_for_one_schedule_never_mix() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let concert = new_concert(&app).await;
    let schedule = new_schedule(&app, &concert).await;
    let map = |seats: i64| {
        json!([{ "name": "Floor", "rows": [
        { "label": "A", "seats": seats, "grade": "S", "price": 1000 } ] }])
    };
    let tasks: Vec<_> = (1..=8)
        .map(|i| {
            let app = std::sync::Arc::clone(&app);
            let variables = json!({ "schedule": schedule, "sections": map(100 + i) });
            tokio::spawn(async move {
                app.graphql_as_organiser(ORGANISER, LAY_OUT, variables)
                    .await
            })
        })
        .collect();
    let mut won = Vec::new();
    for task in tasks {
        let body = task.await.unwrap();
        match body.get("errors") {
            None => won.push(body["data"]["layOutSeats"]["seats"].as_i64().unwrap()),
            Some(_) => assert_eq!(code(&body), "SEAT_MAP_EXISTS", "{body}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one map is laid out");
    assert_eq!(
        scalar(&app, "select count(*) as n from seats").await,
        won[0]
    );
}

/// A 50,000-seat venue in one call (50 rows of 1,000), written whole. The time is printed, not
/// asserted: performance lives in reports.
#[tokio::test(flavor = "multi_thread")]
async fn a_stadium_is_laid_out_in_one_call() {
    let app = TestApp::spawn().await;
    let concert = new_concert(&app).await;
    let schedule = new_schedule(&app, &concert).await;
    let rows: Vec<Value> = (1..=50)
        .map(|r| json!({ "label": format!("{r}"), "seats": 1000, "grade": "A", "price": 60000 }))
        .collect();
    let started = std::time::Instant::now();
    let body = app
        .graphql_as_organiser(
            ORGANISER,
            LAY_OUT,
            json!({ "schedule": schedule, "sections": [{ "name": "Stand", "rows": rows }] }),
        )
        .await;
    println!("50,000 seats laid out in {:?}", started.elapsed());
    assert_eq!(data(&body, "layOutSeats")["seats"], 50_000);
    assert_eq!(
        scalar(&app, "select count(distinct number) as n from seats").await,
        50_000
    );
}

/// Holds are taken only inside a performance's sale: `SALE_NOT_OPEN` (with `extensions.opensAt`)
/// before its opening, `SALE_CLOSED` after its closing; the open performance of the same concert
/// sells as before.
#[tokio::test(flavor = "multi_thread")]
async fn holds_are_refused_outside_the_sales_window() {
    let (app, fans) = TestApp::staged(10, 1, 1_000_000, |_| {}).await;
    let fan = &fans[0];
    let now = chrono::Utc::now();
    let at = |hours: i64| (now + chrono::Duration::hours(hours)).to_rfc3339();
    let schedule = |input: Value| {
        let app = &app;
        async move {
            let body = app
                .graphql_as_organiser(ORGANISER, CREATE_SCHEDULE, json!({ "input": input }))
                .await;
            let id = data(&body, "createSchedule")["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let laid_out = app
                .graphql_as_organiser(
                    ORGANISER,
                    LAY_OUT,
                    json!({ "schedule": id, "sections": two_sections() }),
                )
                .await;
            data(&laid_out, "layOutSeats");
            id
        }
    };
    let later = schedule(
        json!({ "concertId": "1", "venue": "Hall", "startsAt": at(48),
        "salesOpenAt": at(1) }),
    )
    .await;
    let over = schedule(
        json!({ "concertId": "1", "venue": "Hall", "startsAt": at(48),
        "salesOpenAt": at(-3), "salesCloseAt": at(-1) }),
    )
    .await;
    let hold = "mutation($s: ID!) { holdBestAvailable(scheduleId: $s, count: 1) { id } }";
    let as_fan = |schedule: &str| {
        let headers = vec![
            ("authorization", format!("Bearer {}", app.token_for(fan.id))),
            ("queue-token", fan.queue_token.clone().unwrap()),
        ];
        let app = &app;
        let variables = json!({ "s": schedule });
        async move { app.graphql_with_headers(hold, variables, &headers).await }
    };

    let not_open = as_fan(&later).await;
    assert_eq!(code(&not_open), "SALE_NOT_OPEN", "{not_open}");
    let opens_at = not_open["errors"][0]["extensions"]["opensAt"]
        .as_str()
        .unwrap();
    let opens_at = chrono::DateTime::parse_from_rfc3339(opens_at).unwrap();
    assert!((opens_at.timestamp() - (now + chrono::Duration::hours(1)).timestamp()).abs() <= 1);
    let closed = as_fan(&over).await;
    assert_eq!(code(&closed), "SALE_CLOSED", "{closed}");
    assert_eq!(
        scalar(&app, "select count(*) as n from reservations").await,
        0
    );

    let open = as_fan("1").await;
    assert!(
        open.get("errors").is_none(),
        "the open performance sells: {open}"
    );
}

/// A paid booking is refunded when cancelled until `REFUND_DEADLINE_HOURS` before its
/// performance, and not after (`NOT_REFUNDABLE`, nothing changed).
#[tokio::test(flavor = "multi_thread")]
async fn paid_bookings_are_refundable_until_the_deadline_before_the_show() {
    let (app, fans) = TestApp::staged(10, 1, 1_000_000, |config| {
        config.refund_deadline_hours = 24;
    })
    .await;
    let fan = &fans[0];
    let held = app.hold_best_available(fan, 1).await.unwrap();
    let receipt = app.pay(fan, held.id, "refund-deadline").await.unwrap();

    let mut conn = app.db().await;
    use diesel_async::SimpleAsyncConnection;
    conn.batch_execute("UPDATE schedules SET starts_at = now() + interval '23 hours'")
        .await
        .unwrap();
    assert_eq!(
        app.cancel_reservation(fan, held.id).await.unwrap_err(),
        "NOT_REFUNDABLE"
    );
    let status = scalar(
        &app,
        "select count(*) as n from reservations where status = 'CONFIRMED'",
    )
    .await;
    assert_eq!(status, 1, "the booking stands");
    let balance = scalar(&app, "select points as n from users where id = 1").await;
    assert_eq!(balance, receipt.balance_after, "nothing refunded");

    conn.batch_execute("UPDATE schedules SET starts_at = now() + interval '25 hours'")
        .await
        .unwrap();
    let cancelled = app.cancel_reservation(fan, held.id).await.unwrap();
    assert_eq!(cancelled.status, "CANCELLED");
    let balance = scalar(&app, "select points as n from users where id = 1").await;
    assert_eq!(balance, 1_000_000, "refunded in full");
}

/// Seats of the staged performance a fan holds or bought (HELD and CONFIRMED).
async fn seats_of(app: &TestApp, user: i64) -> i64 {
    scalar(
        app,
        &format!(
            "select count(*) as n from reservations r join reservation_seats rs \
             on rs.reservation_id = r.id and rs.status = r.status \
             where r.user_id = {user} and r.status in ('HELD', 'CONFIRMED')"
        ),
    )
    .await
}

/// With `MAX_TICKETS_PER_FAN` = 3 a fan holds and buys at most three seats of a performance.
#[tokio::test(flavor = "multi_thread")]
async fn a_fan_holds_and_buys_at_most_the_ticket_limit() {
    let (app, fans) = TestApp::staged(20, 1, 10_000_000, |config| {
        config.max_tickets_per_fan = 3;
    })
    .await;
    let first = app.hold_best_available(&fans[0], 2).await.unwrap();
    app.pay(&fans[0], first.id, "limit-1").await.unwrap();
    // Paying ended the queue token: the fan comes back through the queue.
    let fan = app.enter_queue(1, 1).await.unwrap();
    app.admit(1, 1).await;
    assert_eq!(
        app.hold_best_available(&fan, 2).await.unwrap_err(),
        "TICKET_LIMIT"
    );
    assert_eq!(seats_of(&app, 1).await, 2, "nothing was held");
    let third = app.hold_best_available(&fan, 1).await.unwrap();
    assert_eq!(seats_of(&app, 1).await, 3);
    // A cancelled hold gives its seats back to the limit.
    app.cancel_reservation(&fan, third.id).await.unwrap();
    app.hold_best_available(&fan, 1).await.unwrap();
    assert_eq!(seats_of(&app, 1).await, 3);
}

/// A payment and the same fan's next hold at the same moment: whichever commits first, the
/// hold never takes the fan past the limit (it is told `TICKET_LIMIT`, `HOLD_ALREADY_EXISTS`
/// or `QUEUE_TOKEN_EXPIRED`), for 12 fans at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_payment_racing_the_next_hold_never_passes_the_ticket_limit() {
    let (app, fans) = TestApp::staged(60, 12, 10_000_000, |config| {
        config.max_tickets_per_fan = 3;
    })
    .await;
    let app = std::sync::Arc::new(app);
    let mut held = Vec::new();
    for fan in &fans {
        held.push(app.hold_best_available(fan, 2).await.unwrap().id);
    }
    let races: Vec<_> = fans
        .iter()
        .zip(held)
        .map(|(fan, reservation)| {
            let app = std::sync::Arc::clone(&app);
            let fan = fan.clone();
            tokio::spawn(async move {
                let key = format!("race-{}", fan.id);
                let (paid, next) = tokio::join!(
                    app.pay(&fan, reservation, &key),
                    app.hold_best_available(&fan, 2)
                );
                (paid.is_ok(), next.map(|r| r.id))
            })
        })
        .collect();
    for race in races {
        let (paid, next) = race.await.unwrap();
        assert!(paid, "the payment goes through");
        let code = next.expect_err("the next hold would pass the limit");
        assert!(
            ["TICKET_LIMIT", "HOLD_ALREADY_EXISTS", "QUEUE_TOKEN_EXPIRED"].contains(&code.as_str()),
            "{code}"
        );
    }
    for fan in &fans {
        assert_eq!(seats_of(&app, fan.id).await, 2);
    }
}

/// The numbers of a reservation's seats, sorted.
fn numbers(reservation: &crate::helpers::Reservation) -> Vec<i64> {
    let mut numbers: Vec<i64> = reservation.seats.iter().map(|s| s.number).collect();
    numbers.sort_unstable();
    numbers
}

/// `holdBestAvailable(count: N)` gives N adjacent seats in one row when a row has them, even
/// of a lower grade than split seats would be; else the best seats, split. The staged map of 8
/// seats is row 1 = R 1-2, row 2 = S 3-4, row 3 = A 5-8 (`seed`'s demo map).
#[tokio::test(flavor = "multi_thread")]
async fn best_available_seats_fans_together_when_a_row_has_room() {
    let (app, fans) = TestApp::staged(8, 4, 1_000_000, |_| {}).await;
    app.hold_seats(&fans[0], &[1]).await.unwrap();
    let pair = app.hold_best_available(&fans[1], 2).await.unwrap();
    assert_eq!(
        numbers(&pair),
        [3, 4],
        "a pair in row 2, not seats 2 and 3 apart"
    );
    let three = app.hold_best_available(&fans[2], 3).await.unwrap();
    assert_eq!(numbers(&three), [5, 6, 7]);
    let split = app.hold_best_available(&fans[3], 2).await.unwrap();
    assert_eq!(
        numbers(&split),
        [2, 8],
        "no row has two free seats left: the best two, split"
    );
}

/// Sixty fans ask for pairs at once on 100 seats: no seat is in two holds, every hold has its
/// two seats, and (rows of 10 and 20 seats, all even) the pairs sit together.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_pairs_sit_together_and_never_share_a_seat() {
    let (app, fans) = TestApp::staged(100, 60, 1_000_000, |_| {}).await;
    let app = std::sync::Arc::new(app);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(fans.len()));
    let tasks: Vec<_> = fans
        .iter()
        .map(|fan| {
            let (app, barrier, fan) = (app.clone(), barrier.clone(), fan.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                app.hold_best_available(&fan, 2).await
            })
        })
        .collect();
    let mut together = 0;
    let mut held = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(reservation) => {
                held += 1;
                let n = numbers(&reservation);
                assert_eq!(n.len(), 2);
                together += usize::from(n[1] == n[0] + 1);
            }
            Err(code) => assert_eq!(code, "SEAT_UNAVAILABLE"),
        }
    }
    println!("{together} of {held} pairs together");
    assert_eq!(held, 50, "100 seats make 50 pairs");
    assert_eq!(
        scalar(
            &app,
            "select count(distinct seat_id) as n from reservation_seats where status = 'HELD'"
        )
        .await,
        100
    );
    assert!(together >= 40, "{together} of {held} pairs together");
    let row_of = "select count(*) as n from reservation_seats a join reservation_seats b \
        on a.reservation_id = b.reservation_id and a.seat_id < b.seat_id \
        join seats x on x.id = a.seat_id join seats y on y.id = b.seat_id \
        where x.row_label = y.row_label and y.seat_in_row = x.seat_in_row + 1";
    assert_eq!(
        scalar(&app, row_of).await,
        together as i64,
        "together means one row, side by side"
    );
}

/// `capacityPlan` answers what `concert-reservation plan` prints, and refuses impossible input.
#[tokio::test(flavor = "multi_thread")]
async fn organisers_plan_a_sale() {
    let app = TestApp::spawn().await;
    let query = "query($input: CapacityPlanInput!) { capacityPlan(input: $input) { \
        admitPerSecond activeCap fansAdmitted soldOutAfterSeconds fansToldSoldOut \
        waitByPosition { position seconds } } }";
    let body = app
        .graphql_as_organiser(
            ORGANISER,
            query,
            json!({ "input": { "seats": 50, "fans": 10000, "secondsToBuy": 30,
                "conversion": 0.5, "bookingCapacity": 100 } }),
        )
        .await;
    let plan = data(&body, "capacityPlan");
    assert_eq!(plan["admitPerSecond"], 80.0);
    assert_eq!(plan["activeCap"], 2880);
    assert_eq!(plan["fansAdmitted"], 100);
    assert_eq!(plan["fansToldSoldOut"], 9900);
    assert_eq!(plan["soldOutAfterSeconds"], 31.25);
    assert_eq!(
        plan["waitByPosition"][2],
        json!({ "position": 100, "seconds": 1.2375 })
    );
    // The slow buyers decide when the last seat goes; the cap still follows the mean.
    let body = app
        .graphql_as_organiser(
            ORGANISER,
            query,
            json!({ "input": { "seats": 50, "fans": 10000, "secondsToBuy": 30,
                "slowestSecondsToBuy": 45, "conversion": 0.5, "bookingCapacity": 100 } }),
        )
        .await;
    let plan = data(&body, "capacityPlan");
    assert_eq!(plan["soldOutAfterSeconds"], 46.25);
    assert_eq!(plan["activeCap"], 2880);
    for input in [
        json!({ "seats": -1, "fans": 10, "bookingCapacity": 10 }),
        json!({ "seats": 10, "fans": 10, "bookingCapacity": 0 }),
        json!({ "seats": 10, "fans": 10, "bookingCapacity": 10, "conversion": 2 }),
        json!({ "seats": 10, "fans": 10, "bookingCapacity": 10, "secondsToBuy": 30,
                "slowestSecondsToBuy": 10 }),
    ] {
        let body = app
            .graphql_as_organiser(ORGANISER, query, json!({ "input": input }))
            .await;
        assert_eq!(code(&body), "INVALID_INPUT", "{input}: {body}");
    }
}
