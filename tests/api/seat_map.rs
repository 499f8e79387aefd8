//! The seat map: served from a short-lived Redis cache, invalidated by every change, and changes
//! pushed to `seatChanges` subscribers.

use serde_json::json;

use crate::helpers::ws::{connect, next_json, subscribe};
use crate::helpers::{Fan, SCHEDULE, TestApp};

const SEATS: &str = "{ schedule(id: \"1\") { seats { number status } } }";

/// Three seats, a seat map cached for a minute, and one ACTIVE fan.
async fn staged() -> (TestApp, Fan) {
    let (app, mut fans) = TestApp::staged(3, 1, 1_000_000, |config| {
        config.seat_map_cache_ttl_seconds = 60
    })
    .await;
    (app, fans.remove(0))
}

fn statuses(body: &serde_json::Value) -> Vec<String> {
    body["data"]["schedule"]["seats"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|seat| seat["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seat_map_is_cached_and_every_hold_invalidates_it() {
    let (app, fan) = staged().await;
    app.graphql(SEATS).await;
    let before = app.statements_run();
    let cached = app.graphql(SEATS).await;
    assert_eq!(
        app.statements_run() - before,
        0,
        "the schedule comes from the concert directory, its seats from the cache"
    );
    assert_eq!(statuses(&cached), ["AVAILABLE", "AVAILABLE", "AVAILABLE"]);

    let held = app.hold_seats(&fan, &[2]).await.unwrap();
    assert_eq!(
        statuses(&app.graphql(SEATS).await),
        ["AVAILABLE", "HELD", "AVAILABLE"],
        "the hold invalidated the cache"
    );

    app.pay(&fan, held.id, "k").await.unwrap();
    assert_eq!(
        statuses(&app.graphql(SEATS).await),
        ["AVAILABLE", "SOLD", "AVAILABLE"],
        "the payment invalidated it"
    );
}

/// Each instance keeps its own copy of a cached map (no Redis read, nothing to decode) and drops
/// it when the change feed tells of a change, whichever instance made it.
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_keeps_its_copy_of_a_map_until_the_feed_tells_of_a_change() {
    let (app, _fan) = staged().await;
    app.graphql(SEATS).await;
    // Gone from Redis: the answer still comes from this instance's copy, with no SQL.
    let mut redis = app.take_redis_connection().await;
    let _: () = redis::cmd("DEL")
        .arg(app.redis_key("seatmap:1"))
        .query_async(&mut *redis)
        .await
        .unwrap();
    let before = app.statements_run();
    assert_eq!(
        statuses(&app.graphql(SEATS).await),
        ["AVAILABLE", "AVAILABLE", "AVAILABLE"]
    );
    assert_eq!(app.statements_run() - before, 0, "served from the copy");

    // Another instance sold seat 3 (written here straight to the table) and said so on the feed.
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("UPDATE seats SET status = 'SOLD' WHERE number = 3"),
        &mut app.db().await,
    )
    .await
    .unwrap();
    let change = json!({ "schedule_id": 1, "seat_ids": [3], "status": "SOLD" });
    app.seat_map_service()
        .receive(change.to_string().as_bytes());
    assert_eq!(
        statuses(&app.graphql(SEATS).await),
        ["AVAILABLE", "AVAILABLE", "SOLD"],
        "the copy was dropped and the map read again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn seat_changes_are_pushed_to_subscribers() {
    let (app, fan) = staged().await;
    let mut socket = connect(&app, json!({})).await;
    assert_eq!(
        next_json(&mut socket).await.unwrap()["type"],
        "connection_ack"
    );
    subscribe(
        &mut socket,
        "s",
        "subscription { seatChanges(scheduleId: \"1\") { scheduleId seatIds status } }",
        json!({}),
    )
    .await;
    // The subscription is registered once the server has read the message; give it a moment.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let held = app.hold_seats(&fan, &[1, 3]).await.unwrap();
    let first = next_json(&mut socket).await.unwrap();
    assert_eq!(
        first["payload"]["data"]["seatChanges"],
        json!({ "scheduleId": "1", "seatIds": ["1", "3"], "status": "HELD" })
    );

    app.cancel_reservation(&fan, held.id).await.unwrap();
    let second = next_json(&mut socket).await.unwrap();
    assert_eq!(
        second["payload"]["data"]["seatChanges"]["status"], "AVAILABLE",
        "{second}"
    );
}

/// `availableSeats` is counted in the database and cached like the seat map: every hold drops the
/// count at once, and a seat whose hold ran out counts as free (once the cached count is older
/// than the TTL, since no event announces it).
#[tokio::test(flavor = "multi_thread")]
async fn available_seats_counts_free_seats_and_run_out_holds() {
    let (app, fan) = staged().await;
    let available = async || {
        let body = app
            .graphql("{ schedule(id: \"1\") { availableSeats } }")
            .await;
        body["data"]["schedule"]["availableSeats"]
            .as_i64()
            .unwrap_or_else(|| panic!("{body}"))
    };
    assert_eq!(available().await, 3);
    app.hold_seats(&fan, &[1, 2]).await.unwrap();
    assert_eq!(available().await, 1);
    crate::helpers::scalar(
        &app,
        "WITH ran_out AS (UPDATE seats SET held_until = now() - interval '1 second' WHERE id = 1 RETURNING 1) SELECT count(*) AS n FROM ran_out",
    )
    .await;
    assert_eq!(available().await, 1, "cached until a change or the TTL");
    app.announce_seat_change(SCHEDULE).await;
    assert_eq!(available().await, 2, "seat 1's hold ran out");
}
