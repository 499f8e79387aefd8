//! Bad requests get a GraphQL error with a clear message and a stable code: never a 500, never a
//! panic, never an internal message.

use crate::helpers::TestApp;
use diesel_async::SimpleAsyncConnection;
use serde_json::{Value, json};

fn first_error(body: &Value) -> (&str, &str) {
    let error = &body["errors"][0];
    (
        error["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no code: {body}")),
        error["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message: {body}")),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bodies_are_bad_requests() {
    let app = TestApp::spawn().await;

    for body in ["{not json", "[]", r#"{"variables": {}}"#, "42"] {
        let (status, response) = app.post_raw(body).await;
        assert_eq!(status, 400, "{body}: {response}");
        let (code, message) = first_error(&response);
        assert!(code == "BAD_REQUEST", "{body}: {response}");
        assert!(!message.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn query_syntax_errors_are_parse_failures() {
    let app = TestApp::spawn().await;
    let body = app.graphql("{ concerts { title ").await;
    assert_eq!(first_error(&body).0, "GRAPHQL_PARSE_FAILED", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_fields_are_validation_failures() {
    let app = TestApp::spawn().await;
    let body = app.graphql("{ concerts { title passwordHash } }").await;
    let (code, message) = first_error(&body);
    assert_eq!(code, "GRAPHQL_VALIDATION_FAILED", "{body}");
    assert!(message.contains("passwordHash"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn too_deep_queries_are_refused() {
    let app = TestApp::spawn_with(|config| config.graphql_max_depth = 6).await;
    let deep = "{ concerts { schedules { concert { schedules { concert { schedules { concert { title } } } } } } } }";
    let body = app.graphql(deep).await;
    assert_eq!(first_error(&body).0, "QUERY_TOO_DEEP", "{body}");
    assert!(body["data"].is_null(), "nothing runs: {body}");

    let allowed = app
        .graphql("{ concerts { schedules { concert { title } } } }")
        .await;
    assert!(allowed.get("errors").is_none(), "{allowed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn too_complex_queries_are_refused() {
    let app = TestApp::spawn_with(|config| config.graphql_max_complexity = 50).await;
    let fields: String = (0..20)
        .map(|i| format!("c{i}: concerts {{ id title artist }} "))
        .collect();
    let body = app.graphql(&format!("{{ {fields} }}")).await;
    assert_eq!(first_error(&body).0, "QUERY_TOO_COMPLEX", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_directives_are_refused() {
    let app = TestApp::spawn().await;
    let directives = "@include(if: true) ".repeat(5);
    let body = app
        .graphql(&format!("{{ concerts {{ id {directives} }} }}"))
        .await;
    assert_eq!(first_error(&body).0, "TOO_MANY_DIRECTIVES", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_batches_are_refused_and_small_batches_run() {
    let app = TestApp::spawn_with(|config| config.graphql_max_batch = 3).await;
    let op = json!({ "query": "{ concerts { id } }" });

    let (status, body) = app.post_json(&json!([op, op, op, op])).await;
    assert_eq!(status, 400);
    assert_eq!(first_error(&body).0, "BATCH_TOO_LARGE", "{body}");

    let (status, body) = app.post_json(&json!([op, op])).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().map(Vec::len), Some(2), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_are_refused() {
    let app = TestApp::spawn_with(|config| config.max_body_bytes = 1024).await;
    let padding = " ".repeat(4096);
    let (status, body) = app
        .post_raw(format!(
            r#"{{"query": "{{ concerts {{ id }} }}{padding}"}}"#
        ))
        .await;
    assert_eq!(status, 413);
    assert_eq!(first_error(&body).0, "PAYLOAD_TOO_LARGE", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn argument_values_of_the_wrong_type_are_bad_user_input() {
    let app = TestApp::spawn().await;
    let body = app
        .graphql_with(
            "query($n: Int!) { concerts(limit: $n) { id } }",
            json!({ "n": "ten" }),
        )
        .await;
    let code = first_error(&body).0;
    assert!(
        code == "GRAPHQL_VALIDATION_FAILED" || code == "BAD_USER_INPUT",
        "{body}"
    );

    let body = app.graphql("{ concerts(limit: 99999999999) { id } }").await;
    let code = first_error(&body).0;
    assert!(
        code == "GRAPHQL_VALIDATION_FAILED" || code == "BAD_USER_INPUT",
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_operation_names_are_bad_user_input() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post_json(&json!({ "query": "query A { concerts { id } }", "operationName": "B" }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(first_error(&body).0, "BAD_USER_INPUT", "{body}");
}

/// A database failure surfaces as INTERNAL with a generic message: no SQL, no table names.
#[tokio::test(flavor = "multi_thread")]
async fn internal_errors_are_masked() {
    let app = TestApp::spawn().await;
    app.db()
        .await
        .batch_execute("DROP TABLE seats CASCADE")
        .await
        .unwrap();
    app.db()
        .await
        .batch_execute("INSERT INTO concerts (title, artist) VALUES ('t', 'a')")
        .await
        .unwrap();
    app.db()
        .await
        .batch_execute(
            "INSERT INTO schedules (concert_id, starts_at, venue) VALUES (1, now(), 'v')",
        )
        .await
        .unwrap();

    let body = app
        .graphql("{ concerts { schedules { seats { number } } } }")
        .await;

    let (code, message) = first_error(&body);
    assert_eq!(code, "INTERNAL", "{body}");
    assert_eq!(message, "internal server error");
    let text = body.to_string();
    assert!(
        !text.contains("relation") && !text.contains("seats\" does not exist"),
        "leaked: {text}"
    );
}

/// A valid access token of a user who does not exist (deleted, or minted for another database)
/// is told `NOT_FOUND`, not `INTERNAL`, when an operation would write for them (found by the
/// hostile-input generator: the idempotency key's reference to `users`).
#[tokio::test(flavor = "multi_thread")]
async fn a_token_of_a_missing_user_is_told_not_found() {
    let app = TestApp::spawn().await;
    let body = app
        .graphql_as(
            424_242,
            "mutation { chargePoints(amount: 10, idempotencyKey: \"k\") { balance } }",
            json!({}),
        )
        .await;
    let (code, message) = first_error(&body);
    assert_eq!(code, "NOT_FOUND", "{body}");
    assert!(!message.contains("foreign key"), "{message}");
}

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    id: i32,
}

/// A statement's implicit transaction commits when PostgreSQL reads the Sync after it, so an error
/// can follow the row: here a deferred unique check, at commit; in the postgres-stall drill, a
/// statement timeout that fired between the row and the commit, and a hold was answered with a
/// reservation that had been rolled back. `db::one` reads the answer to its end and returns that
/// error; diesel-async's `get_result`, which stops at the row, reports the write as done.
#[tokio::test]
async fn a_write_rolled_back_at_commit_is_an_error_not_a_row() {
    use diesel_async::RunQueryDsl;
    let app = TestApp::spawn().await;
    let mut conn = app.db().await;
    conn.batch_execute(
        "CREATE TEMP TABLE written_once (id int UNIQUE DEFERRABLE INITIALLY DEFERRED)",
    )
    .await
    .expect("a temporary table");

    let twice = || diesel::sql_query("INSERT INTO written_once VALUES (1), (1) RETURNING id");
    let read_to_the_end = concert_reservation::db::one::<_, Id>(twice(), &mut conn).await;
    assert!(
        read_to_the_end.is_err(),
        "the commit failed, so the answer is an error, not the row {:?}",
        read_to_the_end.map(|row| row.id)
    );
    let first_row_only = twice().get_result::<Id>(&mut conn).await;
    assert_eq!(
        first_row_only.map(|row| row.id).ok(),
        Some(1),
        "get_result stops at the row (why db::one exists); if this changes, get_result is safe again"
    );
    let kept = diesel::sql_query("SELECT count(*)::int AS id FROM written_once")
        .load::<Id>(&mut conn)
        .await
        .expect("a count");
    assert_eq!(kept[0].id, 0, "both inserts were rolled back");
}
