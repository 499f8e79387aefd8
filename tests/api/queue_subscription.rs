//! A real websocket client (graphql-transport-ws) subscribes to its place in line and is pushed
//! WAITING updates, then ACTIVE.

use serde_json::json;

use crate::helpers::ws::{connect, next_json, subscribe};
use crate::helpers::{CONCERT, TestApp};

#[tokio::test(flavor = "multi_thread")]
async fn subscribers_get_waiting_updates_then_active() {
    let app = TestApp::spawn_with(|config| {
        config.queue_tick_ms = 100;
        config.queue_admit_per_second = 10.0;
        config.queue_active_cap = 1;
        config.queue_active_ttl_seconds = 1;
    })
    .await;
    app.seed_catalogue(1, 1, 1).await;
    for user in [1, 2] {
        app.enter_queue(user, CONCERT).await.unwrap();
    }
    let mine = app.enter_queue(3, CONCERT).await.unwrap();

    let mut socket = connect(
        &app,
        json!({ "Authorization": format!("Bearer {}", app.token_for(3)) }),
    )
    .await;
    assert_eq!(
        next_json(&mut socket).await.unwrap()["type"],
        "connection_ack"
    );
    let query = "subscription($t: String!) { queueStatus(token: $t) { status position estimatedWaitSeconds } }";
    subscribe(&mut socket, "1", query, json!({ "t": mine.queue_token })).await;

    let mut updates = Vec::new();
    while let Some(message) = next_json(&mut socket).await {
        assert_eq!(message["type"], "next", "{message}");
        let status = message["payload"]["data"]["queueStatus"].clone();
        let done = status["status"] == "ACTIVE";
        updates.push(status);
        if done {
            break;
        }
    }

    let (last, waiting) = updates.split_last().expect("at least one update");
    assert_eq!(last["status"], "ACTIVE", "{updates:?}");
    assert!(
        !waiting.is_empty(),
        "WAITING updates come first: {updates:?}"
    );
    assert!(
        waiting.iter().all(|update| update["status"] == "WAITING"),
        "{updates:?}"
    );
    let positions: Vec<i64> = waiting
        .iter()
        .map(|update| update["position"].as_i64().unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] >= pair[1]),
        "a place never moves back: {positions:?}"
    );
    assert!(
        updates.windows(2).all(|pair| pair[0] != pair[1]),
        "only changes are pushed: {updates:?}"
    );
    assert!(
        positions.contains(&1),
        "the fan saw themself at the front: {positions:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_access_token_is_refused_at_connection_init() {
    let app = TestApp::spawn().await;
    let mut socket = connect(&app, json!({ "Authorization": "Bearer not-a-jwt" })).await;
    assert_eq!(
        next_json(&mut socket).await,
        None,
        "the server closes the connection"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribing_needs_an_identity() {
    let app = TestApp::spawn().await;
    let mut socket = connect(&app, json!({})).await;
    assert_eq!(
        next_json(&mut socket).await.unwrap()["type"],
        "connection_ack"
    );
    let query =
        "subscription { queueStatus(token: \"1.00000000000000000000000000000000\") { status } }";
    subscribe(&mut socket, "1", query, json!({})).await;
    let reply = next_json(&mut socket).await.unwrap();
    assert_eq!(
        reply["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{reply}"
    );
    assert!(reply["payload"]["data"].is_null(), "{reply}");
}
