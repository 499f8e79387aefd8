//! Seat holds under contention, against real PostgreSQL: tasks released together by a Barrier,
//! then the invariants checked in SQL.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{Scalar, TestApp, scalar, viewer};
use concert_reservation::booking::{Reservation, SeatChoice};
use concert_reservation::error::AppError;
use concert_reservation::ids::{ScheduleId, SeatId};
use diesel_async::RunQueryDsl;
use serde_json::json;
use tokio::sync::Barrier;

const SCHEDULE: ScheduleId = ScheduleId(1);

/// One concert, one schedule of `seats` seats, `users` fans, each with an ACTIVE queue token.
async fn stage(
    seats: usize,
    users: usize,
    customize: impl FnOnce(&mut concert_reservation::config::Config),
) -> (Arc<TestApp>, Vec<String>) {
    let (app, tokens) = TestApp::with_active_fans(seats, users, 1_000_000, customize).await;
    (Arc::new(app), tokens)
}

async fn hold(
    app: &TestApp,
    user: i64,
    token: &str,
    choice: SeatChoice,
) -> Result<Reservation, AppError> {
    app.booking()
        .hold(viewer(user), Some(token), SCHEDULE, choice)
        .await
        .map(|held| held.reservation)
}

/// Every user tries at once; returns each user's result.
async fn stampede(
    app: &Arc<TestApp>,
    tokens: &[String],
    choice_of: impl Fn(i64) -> SeatChoice,
) -> Vec<(i64, Result<Reservation, AppError>)> {
    let barrier = Arc::new(Barrier::new(tokens.len()));
    let tasks: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(i, token)| {
            let (app, barrier, token) = (app.clone(), barrier.clone(), token.clone());
            let user = i as i64 + 1;
            let choice = choice_of(user);
            tokio::spawn(async move {
                barrier.wait().await;
                (user, hold(&app, user, &token, choice).await)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

/// No seat is in two live reservations, and a seat is HELD exactly when a live hold has it.
async fn assert_consistent(app: &TestApp) {
    let doubled = scalar(
        app,
        "SELECT count(*) AS n FROM (SELECT seat_id FROM reservation_seats WHERE status IN ('HELD', 'CONFIRMED') \
         GROUP BY seat_id HAVING count(*) > 1) d",
    )
    .await;
    assert_eq!(doubled, 0, "a seat is in two live reservations");
    let mismatched = scalar(
        app,
        "SELECT count(*) AS n FROM seats s WHERE (s.status = 'HELD') <> EXISTS \
         (SELECT 1 FROM reservation_seats rs WHERE rs.seat_id = s.id AND rs.status = 'HELD')",
    )
    .await;
    assert_eq!(mismatched, 0, "seat status and live holds disagree");
}

fn codes<'a>(
    results: impl Iterator<Item = &'a Result<Reservation, AppError>>,
) -> HashSet<&'static str> {
    results
        .filter_map(|result| result.as_ref().err().map(AppError::code))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_fans_one_seat_exactly_one_hold() {
    let (app, tokens) = stage(1, 200, |_| {}).await;

    let results = stampede(&app, &tokens, |_| SeatChoice::Chosen(vec![SeatId(1)])).await;

    let winners = results.iter().filter(|(_, result)| result.is_ok()).count();
    assert_eq!(winners, 1);
    assert_eq!(
        codes(results.iter().map(|(_, r)| r)),
        HashSet::from(["SEAT_UNAVAILABLE"]),
        "losers are told the seat is gone"
    );
    assert_eq!(
        scalar(&app, "SELECT count(*) AS n FROM reservations").await,
        1
    );
    assert_consistent(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn overlapping_multi_seat_holds_never_share_a_seat_and_never_deadlock() {
    let (app, tokens) = stage(12, 100, |_| {}).await;

    // Each fan wants 3 neighbouring seats, in an order that differs from fan to fan.
    let results = stampede(&app, &tokens, |user| {
        let first = (user % 10) + 1;
        let mut seats: Vec<SeatId> = (first..first + 3).map(SeatId).collect();
        if user % 2 == 0 {
            seats.reverse();
        }
        SeatChoice::Chosen(seats)
    })
    .await;

    let held: usize = results.iter().filter_map(|(_, r)| r.as_ref().ok()).count() * 3;
    assert!(held > 0);
    assert_eq!(
        codes(results.iter().map(|(_, r)| r)),
        HashSet::from(["SEAT_UNAVAILABLE"]),
        "no deadlock, busy or internal error"
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT count(*) AS n FROM seats WHERE status = 'HELD'"
        )
        .await as usize,
        held
    );
    assert_consistent(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_best_available_on_fifty_seats_hold_exactly_fifty() {
    let (app, tokens) = stage(50, 500, |_| {}).await;

    let results = stampede(&app, &tokens, |_| SeatChoice::BestAvailable(1)).await;

    let held: Vec<&Reservation> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .collect();
    assert_eq!(held.len(), 50);
    assert_eq!(
        codes(results.iter().map(|(_, r)| r)),
        HashSet::from(["SEAT_UNAVAILABLE"])
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT count(DISTINCT seat_id) AS n FROM reservation_seats WHERE status = 'HELD'"
        )
        .await,
        50
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT count(*) AS n FROM seats WHERE status = 'AVAILABLE'"
        )
        .await,
        0
    );
    assert_consistent(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn best_available_takes_the_best_grade_first() {
    let (app, tokens) = stage(20, 1, |_| {}).await;
    let reservation = hold(&app, 1, &tokens[0], SeatChoice::BestAvailable(2))
        .await
        .unwrap();
    let seats: Vec<i64> = diesel::sql_query(format!(
        "SELECT seat_id AS n FROM reservation_seats WHERE reservation_id = {} ORDER BY seat_id",
        reservation.id
    ))
    .load::<Scalar>(&mut app.db().await)
    .await
    .unwrap()
    .into_iter()
    .map(|c| c.n)
    .collect();
    assert_eq!(seats, vec![1, 2], "front-row VIP seats first");
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_rules_are_enforced_with_clear_codes() {
    let (app, tokens) = stage(10, 2, |config| config.hold_max_seats = 3).await;
    let not_in_schedule = SeatId(999);
    let token = &tokens[0];

    let too_many = hold(
        &app,
        1,
        token,
        SeatChoice::Chosen((1..=4).map(SeatId).collect()),
    )
    .await;
    assert_eq!(too_many.unwrap_err().code(), "INVALID_INPUT");
    let twice = hold(
        &app,
        1,
        token,
        SeatChoice::Chosen(vec![SeatId(1), SeatId(1)]),
    )
    .await;
    assert_eq!(twice.unwrap_err().code(), "INVALID_INPUT");
    let foreign = hold(&app, 1, token, SeatChoice::Chosen(vec![not_in_schedule])).await;
    assert_eq!(foreign.unwrap_err().code(), "INVALID_INPUT");
    let none = hold(&app, 1, token, SeatChoice::BestAvailable(0)).await;
    assert_eq!(none.unwrap_err().code(), "INVALID_INPUT");

    hold(&app, 1, token, SeatChoice::Chosen(vec![SeatId(1)]))
        .await
        .expect("the first hold succeeds");
    let second = hold(&app, 1, token, SeatChoice::Chosen(vec![SeatId(2)])).await;
    assert_eq!(
        second.unwrap_err().code(),
        "HOLD_ALREADY_EXISTS",
        "one live hold per fan and schedule"
    );

    let no_token = app
        .booking()
        .hold(viewer(2), None, SCHEDULE, SeatChoice::BestAvailable(1))
        .await
        .map(|held| held.reservation);
    assert_eq!(no_token.unwrap_err().code(), "QUEUE_TOKEN_REQUIRED");
    let wrong_token = app
        .booking()
        .hold(
            viewer(2),
            Some(token),
            SCHEDULE,
            SeatChoice::BestAvailable(1),
        )
        .await
        .map(|held| held.reservation);
    assert_eq!(wrong_token.unwrap_err().code(), "QUEUE_TOKEN_INVALID");
    assert_consistent(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seats_of_a_hold_that_ran_out_can_be_held_again_at_once() {
    let (app, tokens) = stage(2, 2, |config| config.hold_ttl_seconds = 1).await;
    let first = hold(
        &app,
        1,
        &tokens[0],
        SeatChoice::Chosen(vec![SeatId(1), SeatId(2)]),
    )
    .await
    .unwrap();
    let refused = hold(&app, 2, &tokens[1], SeatChoice::Chosen(vec![SeatId(1)])).await;
    assert_eq!(refused.unwrap_err().code(), "SEAT_UNAVAILABLE");

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let second = hold(&app, 2, &tokens[1], SeatChoice::Chosen(vec![SeatId(1)]))
        .await
        .expect("the ran-out seat is free");

    let statuses: Vec<String> = app
        .graphql("{ schedule(id: \"1\") { seats { number status } } }")
        .await["data"]["schedule"]["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|seat| seat["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        statuses,
        vec!["HELD", "AVAILABLE"],
        "seat 2's hold ran out, seat 1 is held again"
    );
    assert_eq!(
        scalar(
            &app,
            &format!(
                "SELECT count(*) AS n FROM reservations WHERE id = {} AND status = 'EXPIRED'",
                first.id
            )
        )
        .await,
        1
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT count(*) AS n FROM outbox WHERE event_type = 'seats.expired'"
        )
        .await,
        1
    );
    // The first fan can hold again: their own ran-out hold no longer counts as live.
    hold(&app, 1, &tokens[0], SeatChoice::Chosen(vec![SeatId(2)]))
        .await
        .expect("a new hold after the old one ran out");
    assert!(second.total_price > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_mutations_over_graphql() {
    let (app, tokens) = stage(5, 1, |_| {}).await;
    let mutation = "mutation { holdSeats(scheduleId: \"1\", seatIds: [\"2\", \"3\"]) { id status totalPrice seats { number status } } }";

    let without_token = app.graphql_as(1, mutation, json!({})).await;
    assert_eq!(
        without_token["errors"][0]["extensions"]["code"], "QUEUE_TOKEN_REQUIRED",
        "{without_token}"
    );

    let headers = [
        ("authorization", format!("Bearer {}", app.token_for(1))),
        ("queue-token", tokens[0].clone()),
    ];
    let held = app
        .graphql_with_headers(mutation, json!({}), &headers)
        .await;
    assert!(held.get("errors").is_none(), "{held}");
    let reservation = &held["data"]["holdSeats"];
    assert_eq!(reservation["status"], "HELD");
    assert_eq!(
        reservation["seats"],
        json!([{ "number": 2, "status": "HELD" }, { "number": 3, "status": "HELD" }])
    );

    let bad_id = app
        .graphql_with_headers(
            "mutation { holdSeats(scheduleId: \"1\", seatIds: [\"x\"]) { id } }",
            json!({}),
            &headers,
        )
        .await;
    assert_eq!(bad_id["errors"][0]["extensions"]["code"], "INVALID_INPUT");
}
