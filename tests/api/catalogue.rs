//! Catalogue queries against real PostgreSQL, including the proof that nested lists are batched.

use concert_reservation::seed::SeedOptions;
use serde_json::json;

use crate::helpers::TestApp;
use crate::helpers::stage::catalogue;

const EVERYTHING: &str =
    "{ concerts { title schedules { startsAt seats { number status price } } } }";

#[tokio::test(flavor = "multi_thread")]
async fn concerts_list_schedules_and_seats() {
    let app = TestApp::spawn().await;
    app.seed_catalogue(2, 3, 10).await;

    let body = app.graphql(EVERYTHING).await;

    assert!(body.get("errors").is_none(), "unexpected errors: {body}");
    let concerts = body["data"]["concerts"]
        .as_array()
        .expect("a list of concerts");
    assert_eq!(concerts.len(), 2);
    for concert in concerts {
        let schedules = concert["schedules"]
            .as_array()
            .expect("a list of schedules");
        assert_eq!(schedules.len(), 3);
        for schedule in schedules {
            let seats = schedule["seats"].as_array().expect("a list of seats");
            let numbers: Vec<i64> = seats
                .iter()
                .map(|seat| seat["number"].as_i64().unwrap())
                .collect();
            assert_eq!(
                numbers,
                (1..=10).collect::<Vec<_>>(),
                "seats come by number"
            );
            assert!(seats.iter().all(|seat| seat["status"] == "AVAILABLE"));
            assert!(seats.iter().all(|seat| seat["price"].as_i64().unwrap() > 0));
        }
    }
}

/// Three statements (concerts, their schedules, their seats) whatever the data size: the
/// dataloaders batch each level. Without them this would be 1 + concerts + schedules.
#[tokio::test(flavor = "multi_thread")]
async fn nested_catalogue_query_runs_a_constant_number_of_statements() {
    let app = TestApp::spawn().await;

    app.seed_catalogue(2, 2, 5).await;
    let before = app.statements_run();
    let small = app.graphql(EVERYTHING).await;
    let small_count = app.statements_run() - before;
    assert!(small.get("errors").is_none(), "{small}");

    app.seed(SeedOptions {
        reset: true,
        ..catalogue(5, 4, 40)
    })
    .await;
    let before = app.statements_run();
    let large = app.graphql(EVERYTHING).await;
    let large_count = app.statements_run() - before;
    assert!(large.get("errors").is_none(), "{large}");
    assert_eq!(large["data"]["concerts"].as_array().unwrap().len(), 5);

    assert_eq!(small_count, 3, "one statement per level");
    assert_eq!(
        large_count, small_count,
        "the count must not grow with the data"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concert_and_schedule_by_id() {
    let app = TestApp::spawn().await;
    app.seed_catalogue(1, 2, 4).await;
    let list = app
        .graphql("{ concerts { id title schedules { id } } }")
        .await;
    let concert_id = list["data"]["concerts"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let schedule_id = list["data"]["concerts"][0]["schedules"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let body = app
        .graphql_with(
            "query($c: ID!, $s: ID!) { concert(id: $c) { title } schedule(id: $s) { venue availableSeats concert { id } } }",
            json!({ "c": concert_id, "s": schedule_id }),
        )
        .await;

    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(
        body["data"]["concert"]["title"],
        list["data"]["concerts"][0]["title"]
    );
    assert_eq!(body["data"]["schedule"]["availableSeats"], 4);
    assert_eq!(body["data"]["schedule"]["concert"]["id"], concert_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_ids_are_null_and_malformed_ids_are_invalid_input() {
    let app = TestApp::spawn().await;

    let missing = app
        .graphql(r#"{ concert(id: "999999") { title } schedule(id: "424242") { id } }"#)
        .await;
    assert!(missing.get("errors").is_none(), "{missing}");
    assert!(missing["data"]["concert"].is_null());
    assert!(missing["data"]["schedule"].is_null());

    for bad in ["abc", "-1", "0", "1.5", "99999999999999999999"] {
        let body = app
            .graphql_with(
                "query($id: ID!) { concert(id: $id) { title } }",
                json!({ "id": bad }),
            )
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "INVALID_INPUT",
            "{bad}: {body}"
        );
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("not a valid concert id")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concerts_page_is_bounded() {
    let app = TestApp::spawn().await;
    app.seed_catalogue(3, 1, 1).await;

    let page = app
        .graphql("{ concerts(limit: 2, offset: 1) { id } }")
        .await;
    assert_eq!(page["data"]["concerts"].as_array().unwrap().len(), 2);

    for args in ["limit: 0", "limit: 101", "offset: -1"] {
        let body = app
            .graphql(&format!("{{ concerts({args}) {{ id }} }}"))
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "INVALID_INPUT",
            "{args}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn seeding_twice_keeps_the_first_data() {
    let app = TestApp::spawn().await;
    let first = app.seed(catalogue(2, 1, 3)).await;
    let second = app.seed(catalogue(4, 1, 3)).await;

    assert!(!first.skipped);
    assert!(
        second.skipped,
        "a database with concerts is not seeded again"
    );
    let body = app.graphql("{ concerts { id } }").await;
    assert_eq!(body["data"]["concerts"].as_array().unwrap().len(), 2);
}
