//! Every event in the outbox has exactly the payload its type in `events::outbox` describes,
//! whether Rust wrote it or a SQL function did (`seats.held`, `seats.expired`,
//! `payment.completed`).

use std::collections::BTreeSet;
use std::time::Duration;

use concert_reservation::events::outbox::{
    ExpiredHold, PaymentCompleted, ReservationCancelled, SeatsHeld, name,
};
use diesel::sql_types::{Jsonb, Text};
use diesel_async::RunQueryDsl;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::helpers::TestApp;

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Jsonb)]
    payload: Value,
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|object| object.keys().cloned().collect())
        .unwrap_or_default()
}

/// `payload` reads as a `T` and has no field `T` lacks.
fn assert_shape<T: DeserializeOwned + Serialize>(payload: &Value) {
    let typed: T = serde_json::from_value(payload.clone())
        .unwrap_or_else(|err| panic!("{payload} is not a {}: {err}", std::any::type_name::<T>()));
    let again = serde_json::to_value(&typed).expect("serializes");
    assert_eq!(keys(payload), keys(&again), "{payload}");
}

#[tokio::test]
async fn every_event_written_has_the_payload_of_its_type() {
    let (app, fans) = TestApp::staged(6, 2, 1_000_000, |config| {
        config.hold_ttl_seconds = 1;
    })
    .await;
    let paid = app.hold_seats(&fans[0], &[1, 2]).await.expect("a hold");
    app.pay(&fans[0], paid.id, "events-1")
        .await
        .expect("a payment");
    app.cancel_reservation(&fans[0], paid.id)
        .await
        .expect("a refund");
    app.hold_seats(&fans[1], &[3])
        .await
        .expect("a hold to expire");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (expired, _) = app.sweep_expired_holds().await;
    assert_eq!(expired, 1);

    let rows: Vec<Row> = diesel::sql_query("SELECT event_type, payload FROM outbox ORDER BY id")
        .load(&mut app.db().await)
        .await
        .expect("the outbox reads");
    let kinds: Vec<&str> = rows.iter().map(|row| row.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            name::SEATS_HELD,
            name::PAYMENT_COMPLETED,
            name::RESERVATION_CANCELLED,
            name::SEATS_HELD,
            name::SEATS_EXPIRED,
        ]
    );
    for row in &rows {
        match row.event_type.as_str() {
            name::SEATS_HELD => assert_shape::<SeatsHeld>(&row.payload),
            name::PAYMENT_COMPLETED => assert_shape::<PaymentCompleted>(&row.payload),
            name::RESERVATION_CANCELLED => assert_shape::<ReservationCancelled>(&row.payload),
            name::SEATS_EXPIRED => assert_shape::<ExpiredHold>(&row.payload),
            other => panic!("an event nobody describes: {other}"),
        }
    }
    assert_eq!(rows[0].payload["seat_ids"], serde_json::json!([1, 2]));
    assert_eq!(rows[4].payload["seat_ids"], serde_json::json!([3]));
}
