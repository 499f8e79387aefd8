//! An organiser cancels a performance (issue 15): every hold cancelled, every paid booking
//! refunded once with its ledger entry, every seat withdrawn, fans told; with payments and holds
//! racing the cancellation, against real PostgreSQL.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Fan, SCHEDULE, TestApp, code, scalar};

const ORGANISER: i64 = 900;
const POINTS: i64 = 1_000_000;

const CANCEL: &str = "mutation($s: ID!) { cancelSchedule(scheduleId: $s) { scheduleId cancelledAt \
    now holdsCancelled bookingsRefunded pointsRefunded seatsWithdrawn } }";

async fn cancel(app: &TestApp) -> Value {
    let body = app
        .graphql_as_organiser(ORGANISER, CANCEL, json!({ "s": SCHEDULE.to_string() }))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["cancelSchedule"].clone()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    scalar(app, sql).await
}

#[tokio::test(flavor = "multi_thread")]
async fn only_an_organiser_cancels_and_an_unknown_performance_is_not_found() {
    let (app, _) = TestApp::staged(2, 1, POINTS, |_| {}).await;
    let variables = json!({ "s": SCHEDULE.to_string() });
    let fan = app.graphql_as(1, CANCEL, variables.clone()).await;
    assert_eq!(code(&fan), "FORBIDDEN", "{fan}");
    let anonymous = app.graphql_with(CANCEL, variables).await;
    assert_eq!(code(&anonymous), "UNAUTHENTICATED", "{anonymous}");
    let unknown = app
        .graphql_as_organiser(ORGANISER, CANCEL, json!({ "s": "999" }))
        .await;
    assert_eq!(code(&unknown), "NOT_FOUND", "{unknown}");
    let malformed = app
        .graphql_as_organiser(ORGANISER, CANCEL, json!({ "s": "seven" }))
        .await;
    assert_eq!(code(&malformed), "INVALID_INPUT", "{malformed}");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM schedules WHERE cancelled_at IS NOT NULL"
        )
        .await,
        0,
        "nothing was cancelled"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_refunds_the_paid_cancels_the_held_and_withdraws_every_seat() {
    let (app, fans) = TestApp::staged(6, 3, POINTS, |_| {}).await;
    let paid_one = app.hold_seats(&fans[0], &[1]).await.unwrap();
    app.pay(&fans[0], paid_one.id, "a").await.unwrap();
    let paid_two = app.hold_seats(&fans[1], &[2, 3]).await.unwrap();
    app.pay(&fans[1], paid_two.id, "b").await.unwrap();
    let held = app.hold_seats(&fans[2], &[4]).await.unwrap();

    let summary = cancel(&app).await;
    assert_eq!(summary["now"], true);
    assert_eq!(summary["holdsCancelled"], 1);
    assert_eq!(summary["bookingsRefunded"], 2);
    assert_eq!(
        summary["pointsRefunded"],
        paid_one.total_price + paid_two.total_price
    );
    assert_eq!(summary["seatsWithdrawn"], 6);

    // Every fan has their points back, through a REFUND ledger entry per booking.
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM users WHERE points <> 1000000"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM point_ledger WHERE reason = 'REFUND'"
        )
        .await,
        2
    );
    app.assert_checks_pass(&["cancelled_performances_closed"])
        .await;
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM outbox WHERE event_type = 'reservation.cancelled'"
        )
        .await,
        3
    );
    // Fans see it: the seat map, their bookings, and the performance itself.
    assert!(
        app.seat_map(SCHEDULE)
            .await
            .iter()
            .all(|seat| seat.status == "WITHDRAWN")
    );
    let mine = app
        .graphql_as(3, "{ me { reservations { id status } } }", json!({}))
        .await;
    assert_eq!(
        mine["data"]["me"]["reservations"][0]["status"], "CANCELLED",
        "{mine}"
    );
    assert_eq!(
        mine["data"]["me"]["reservations"][0]["id"],
        held.id.to_string()
    );
    let performance = app
        .graphql(&format!(
            "{{ schedule(id: \"{SCHEDULE}\") {{ cancelledAt }} }}"
        ))
        .await;
    assert!(
        performance["data"]["schedule"]["cancelledAt"].is_string(),
        "{performance}"
    );
    // Its sale is closed; paying the cancelled hold is refused; cancelling again does nothing.
    let fan = Fan::with_queue_token(3, fans[2].queue_token.clone().unwrap());
    assert_eq!(app.hold_seats(&fan, &[5]).await.unwrap_err(), "SALE_CLOSED");
    assert_eq!(
        app.pay(&fans[2], held.id, "c").await.unwrap_err(),
        "HOLD_CANCELLED"
    );
    let again = cancel(&app).await;
    assert_eq!(again["now"], false);
    assert_eq!(again["bookingsRefunded"], 0);
    assert_eq!(again["cancelledAt"], summary["cancelledAt"]);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM point_ledger WHERE reason = 'REFUND'"
        )
        .await,
        2,
        "refunded once"
    );
    let report = app.verify().await;
    assert!(report.passed, "{report}");
}

/// Forty fans pay their holds and twenty more try to hold while the organiser cancels: whatever
/// the order, afterwards no reservation of the performance is live, no seat is anything but
/// WITHDRAWN, every fan has exactly their points back (a payment that committed first was
/// refunded once, one that came after was refused), and `verify` passes.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancellation_racing_payments_and_holds_refunds_each_paid_booking_once() {
    let (app, fans) = TestApp::staged(80, 60, POINTS, |_| {}).await;
    let mut holds = Vec::new();
    for (index, fan) in fans[..40].iter().enumerate() {
        let seat = index as i64 + 1;
        holds.push(app.hold_seats(fan, &[seat]).await.unwrap());
    }
    let payments = fans[..40].iter().zip(&holds).map(|(fan, hold)| {
        let app = &app;
        async move {
            // Spread over about a quarter of a second, so the cancellation lands among them.
            tokio::time::sleep(Duration::from_millis(6 * fan.id as u64)).await;
            app.pay(fan, hold.id, &format!("pay-{}", fan.id))
                .await
                .is_ok()
        }
    });
    let late_holds = fans[40..].iter().enumerate().map(|(index, fan)| {
        let app = &app;
        async move {
            tokio::time::sleep(Duration::from_millis(10 * index as u64)).await;
            let seat = 41 + index as i64;
            app.hold_seats(fan, &[seat]).await.is_ok()
        }
    });
    let (paid, held, summary) = tokio::join!(
        futures::future::join_all(payments),
        futures::future::join_all(late_holds),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            cancel(&app).await
        },
    );
    let paid = paid.iter().filter(|ok| **ok).count() as i64;
    let held = held.iter().filter(|ok| **ok).count() as i64;

    assert_eq!(summary["now"], true);
    assert_eq!(
        summary["bookingsRefunded"].as_i64().unwrap(),
        paid,
        "every payment that went through was refunded"
    );
    assert_eq!(
        summary["holdsCancelled"].as_i64().unwrap() + paid,
        40 + held,
        "every hold, old or new, was either paid and refunded or cancelled"
    );
    // No live reservation and no seat but WITHDRAWN on the cancelled performance.
    app.assert_checks_pass(&["cancelled_performances_closed"])
        .await;
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM users WHERE points <> 1000000"
        )
        .await,
        0,
        "every fan has exactly their points back"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM point_ledger WHERE reason = 'REFUND'"
        )
        .await,
        paid
    );
    let report = app.verify().await;
    assert!(report.passed, "{report}");
}
