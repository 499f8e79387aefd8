//! Seat holds: the rules and their codes over the API, and contention: fans released together
//! by a Barrier (in-process, see `helpers::in_process`), then the invariants checked by `verify`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use diesel_async::RunQueryDsl;
use serde_json::json;
use tokio::sync::Barrier;

use crate::helpers::{Fan, Outcome, Scalar, TestApp, invariants, scalar};

/// How a fan asks for seats.
#[derive(Clone)]
enum Choice {
    Seats(Vec<i64>),
    BestAvailable(u32),
}

/// One concert, one schedule of `seats` seats, `fans` fans, each with an ACTIVE queue token.
async fn stage(
    seats: usize,
    fans: usize,
    customize: impl FnOnce(&mut concert_reservation::config::Config),
) -> (Arc<TestApp>, Vec<Fan>) {
    let (app, fans) = TestApp::staged(seats, fans, 1_000_000, customize).await;
    (Arc::new(app), fans)
}

/// One fan's attempt, in-process (see `helpers::in_process`); answers the reservation id.
async fn hold(app: &TestApp, fan: &Fan, choice: Choice) -> Outcome<i64> {
    match choice {
        Choice::Seats(seats) => app.hold_seats_in_process(fan, &seats).await,
        Choice::BestAvailable(count) => app.hold_best_available_in_process(fan, count).await,
    }
}

/// Every fan tries at once; returns each fan's result.
async fn stampede(
    app: &Arc<TestApp>,
    fans: &[Fan],
    choice_of: impl Fn(i64) -> Choice,
) -> Vec<(i64, Outcome<i64>)> {
    let barrier = Arc::new(Barrier::new(fans.len()));
    let tasks: Vec<_> = fans
        .iter()
        .map(|fan| {
            let (app, barrier, fan) = (app.clone(), barrier.clone(), fan.clone());
            let choice = choice_of(fan.id);
            tokio::spawn(async move {
                barrier.wait().await;
                (fan.id, hold(&app, &fan, choice).await)
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
    app.assert_checks_pass(invariants::SEATS).await;
}

fn codes<'a>(results: impl Iterator<Item = &'a Outcome<i64>>) -> HashSet<&'a str> {
    results
        .filter_map(|result| result.as_ref().err().map(String::as_str))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_fans_one_seat_exactly_one_hold() {
    let (app, fans) = stage(1, 200, |_| {}).await;

    let results = stampede(&app, &fans, |_| Choice::Seats(vec![1])).await;

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
    let (app, fans) = stage(12, 100, |_| {}).await;

    // Each fan wants 3 neighbouring seats, in an order that differs from fan to fan.
    let results = stampede(&app, &fans, |user| {
        let first = (user % 10) + 1;
        let mut seats: Vec<i64> = (first..first + 3).collect();
        if user % 2 == 0 {
            seats.reverse();
        }
        Choice::Seats(seats)
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
    let (app, fans) = stage(50, 500, |_| {}).await;

    let results = stampede(&app, &fans, |_| Choice::BestAvailable(1)).await;

    let held: Vec<&i64> = results
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
    let (app, fans) = stage(20, 1, |_| {}).await;
    let reservation = app.hold_best_available(&fans[0], 2).await.unwrap();
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
    let (app, fans) = stage(10, 2, |config| config.hold_max_seats = 3).await;
    let not_in_schedule = 999;
    let fan = &fans[0];

    let too_many = app.hold_seats(fan, &[1, 2, 3, 4]).await;
    assert_eq!(too_many.unwrap_err(), "INVALID_INPUT");
    let twice = app.hold_seats(fan, &[1, 1]).await;
    assert_eq!(twice.unwrap_err(), "INVALID_INPUT");
    let foreign = app.hold_seats(fan, &[not_in_schedule]).await;
    assert_eq!(foreign.unwrap_err(), "INVALID_INPUT");
    let none = app.hold_best_available(fan, 0).await;
    assert_eq!(none.unwrap_err(), "INVALID_INPUT");

    app.hold_seats(fan, &[1])
        .await
        .expect("the first hold succeeds");
    let second = app.hold_seats(fan, &[2]).await;
    assert_eq!(
        second.unwrap_err(),
        "HOLD_ALREADY_EXISTS",
        "one live hold per fan and schedule"
    );

    let no_token = app
        .hold_best_available(&Fan::without_queue_token(2), 1)
        .await;
    assert_eq!(no_token.unwrap_err(), "QUEUE_TOKEN_REQUIRED");
    let wrong_token = app
        .hold_best_available(&fans[1].with_token_of(fan), 1)
        .await;
    assert_eq!(wrong_token.unwrap_err(), "QUEUE_TOKEN_INVALID");
    assert_consistent(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seats_of_a_hold_that_ran_out_can_be_held_again_at_once() {
    let (app, fans) = stage(2, 2, |config| config.hold_ttl_seconds = 1).await;
    let first = app.hold_seats(&fans[0], &[1, 2]).await.unwrap();
    let refused = app.hold_seats(&fans[1], &[1]).await;
    assert_eq!(refused.unwrap_err(), "SEAT_UNAVAILABLE");

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let second = app
        .hold_seats(&fans[1], &[1])
        .await
        .expect("the ran-out seat is free");

    let statuses: Vec<String> = app
        .seat_map(crate::helpers::SCHEDULE)
        .await
        .into_iter()
        .map(|seat| seat.status)
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
    app.hold_seats(&fans[0], &[2])
        .await
        .expect("a new hold after the old one ran out");
    assert!(second.total_price > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_mutations_over_graphql() {
    let (app, fans) = stage(5, 1, |_| {}).await;
    let mutation = "mutation { holdSeats(scheduleId: \"1\", seatIds: [\"2\", \"3\"]) { id status totalPrice seats { number status } } }";

    let without_token = app.graphql_as(1, mutation, json!({})).await;
    assert_eq!(
        without_token["errors"][0]["extensions"]["code"], "QUEUE_TOKEN_REQUIRED",
        "{without_token}"
    );

    let headers = app.headers_of(&fans[0]);
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
