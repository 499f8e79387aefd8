//! What GraphQL clients and tools send works out of the box: the standard introspection query of
//! graphql-js (GraphiQL, Apollo tooling, graphql-codegen, Postman and Insomnia send it), which a
//! deployment can turn off.
//!
//! The fixtures are `getIntrospectionQuery()` of graphql-js 16.15.0 from npm, as is and with every
//! option on (`descriptions`, `specifiedByUrl`, `directiveIsRepeatable`, `schemaDescription`,
//! `inputValueDeprecation`, `oneOf`). To make them again:
//! `node -e "process.stdout.write(require('graphql').getIntrospectionQuery({...}))"`.

use serde_json::Value;

use crate::helpers::{TestApp, code};

const INTROSPECTION_DEFAULT: &str = include_str!("fixtures/introspection-default.graphql");
const INTROSPECTION_ALL_OPTIONS: &str = include_str!("fixtures/introspection-all-options.graphql");

#[tokio::test(flavor = "multi_thread")]
async fn the_standard_introspection_queries_answer_the_whole_schema() {
    let app = TestApp::spawn().await;
    for query in [INTROSPECTION_DEFAULT, INTROSPECTION_ALL_OPTIONS] {
        let body = app.graphql(query).await;
        assert!(body.get("errors").is_none(), "{body}");
        let schema = &body["data"]["__schema"];
        assert_eq!(schema["queryType"]["name"], "Query", "{body}");
        assert_eq!(schema["subscriptionType"]["name"], "Subscription");
        let types = schema["types"].as_array().expect("the schema's types");
        assert!(
            types.iter().any(|t| t["name"] == "QueueStatus"),
            "the API's own types are listed"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_keeps_its_depth_limit_beside_introspection() {
    let app = TestApp::spawn_with(|config| config.graphql_max_depth = 3).await;
    let body = app
        .graphql("{ concerts { schedules { concert { title } } } }")
        .await;
    assert_eq!(code(&body), "QUERY_TOO_DEEP", "{body}");
    assert!(body["data"].is_null(), "nothing runs: {body}");
    let body = app.graphql(INTROSPECTION_DEFAULT).await;
    assert!(body.get("errors").is_none(), "{body}");

    let endless = format!(
        "{{ __type(name: \"Query\") {{ {} name {} }} }}",
        "ofType { ".repeat(25),
        "}".repeat(25)
    );
    let body = app.graphql(&endless).await;
    assert_eq!(code(&body), "QUERY_TOO_DEEP", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn introspection_turned_off_is_refused_with_its_code() {
    let app = TestApp::spawn_with(|config| config.graphql_introspection = false).await;
    for query in [
        INTROSPECTION_DEFAULT,
        "{ __type(name: \"Query\") { name } }",
        "{ concerts { id } __schema { queryType { name } } }",
    ] {
        let body = app.graphql(query).await;
        assert_eq!(code(&body), "INTROSPECTION_DISABLED", "{body}");
        assert!(body["data"].is_null(), "nothing runs: {body}");
    }
    let body = app
        .graphql("{ __typename concerts { __typename id } }")
        .await;
    assert!(
        body.get("errors").is_none(),
        "__typename is not introspection: {body}"
    );
}

/// Fields come back in the order the query asked for them, at the root too (whose fields are
/// merged from several objects).
#[tokio::test(flavor = "multi_thread")]
async fn fields_come_back_in_query_order() {
    let app = TestApp::spawn().await;
    app.seed_catalogue(1, 1, 2).await;
    let query = "{ z: concerts(limit: 1) { title id } me { id } a: concerts(limit: 1) { id } ...F } \
                 fragment F on Query { m: concert(id: \"1\") { id } }";
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", app.token_for(1)))
        .json(&serde_json::json!({ "query": query }))
        .send()
        .await
        .expect("the server answers");
    let text = response.text().await.unwrap();
    let at = |key: &str| {
        text.find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
    };
    assert!(at("z") < at("me"), "{text}");
    assert!(at("me") < at("a"), "{text}");
    assert!(at("a") < at("m"), "{text}");
    assert!(at("title") < at("id"), "{text}");
}

async fn post_with_accept(app: &TestApp, accept: Option<&str>, body: &str) -> (u16, String, Value) {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let media = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, media, body)
}

/// `Accept` picks the answer's media type; with `application/graphql-response+json` a request
/// refused before it ran is a 400 without `data`, with `application/json` the legacy 200.
#[tokio::test(flavor = "multi_thread")]
async fn the_answer_follows_accept() {
    let app = TestApp::spawn().await;
    let ok = r#"{"query":"{ concerts(limit: 1) { id } }"}"#;
    let unknown_field = r#"{"query":"{ concerts { nope } }"}"#;
    let unparsable = r#"{"query":"{ concerts { "}"#;

    for accept in [None, Some("application/json"), Some("*/*")] {
        let (status, media, body) = post_with_accept(&app, accept, ok).await;
        assert_eq!(
            (status, media.as_str()),
            (200, "application/json; charset=utf-8"),
            "{accept:?}"
        );
        assert!(body.get("errors").is_none(), "{body}");
        let (status, _, body) = post_with_accept(&app, accept, unknown_field).await;
        assert_eq!(status, 200, "{accept:?}: {body}");
        assert!(
            body["data"].is_null() && body.get("data").is_some(),
            "{body}"
        );
        assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED");
    }

    let spec = Some("application/graphql-response+json, application/json;q=0.9");
    let (status, media, body) = post_with_accept(&app, spec, ok).await;
    assert_eq!(
        (status, media.as_str()),
        (200, "application/graphql-response+json; charset=utf-8")
    );
    assert!(body["data"]["concerts"].is_array(), "{body}");
    for (request, expected) in [
        (unknown_field, "GRAPHQL_VALIDATION_FAILED"),
        (unparsable, "GRAPHQL_PARSE_FAILED"),
    ] {
        let (status, _, body) = post_with_accept(&app, spec, request).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body.get("data").is_none(),
            "nothing ran, so no data: {body}"
        );
        assert_eq!(code(&body), expected);
    }
}

/// `GET /graphql?query=` runs queries, never mutations; without `query` it is GraphiQL.
#[tokio::test(flavor = "multi_thread")]
async fn get_runs_queries_and_refuses_mutations() {
    let app = TestApp::spawn().await;
    let get = |query: &str| {
        let url = url::Url::parse_with_params(
            &app.url("/graphql"),
            [("query", query), ("variables", r#"{"n":1}"#)],
        )
        .unwrap();
        app.client
            .get(url.as_str())
            .header("accept", "application/json")
            .send()
    };
    let response = get("query($n: Int) { concerts(limit: $n) { id } }")
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["data"]["concerts"].is_array(), "{body}");

    let response = get("mutation { enterQueue(concertId: \"1\") { token } }")
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "BAD_REQUEST", "{body}");

    let page = app.get("/graphql").await;
    assert_eq!(page.status(), 200);
    assert!(
        page.text().await.unwrap().contains("graphiql"),
        "GraphiQL's page"
    );
}

/// A bad access token is refused in our words, never the token library's.
#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_are_refused_in_our_words() {
    let app = TestApp::spawn().await;
    for (token, expected) in [
        ("not-a-jwt", "malformed"),
        ("a.b.c", "malformed"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.bad", "malformed"),
    ] {
        let response = app
            .client
            .post(app.url("/graphql"))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(r#"{"query":"{ me { id } }"}"#)
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{message}");
        for library_text in [
            "Base64",
            "base64",
            "Json",
            "InvalidToken",
            "invalid type",
            "variant",
        ] {
            assert!(
                !message.contains(library_text),
                "library text leaked: {message}"
            );
        }
    }
}

/// An oversized body is read to its end before the 413, so the client reads the answer even
/// while still sending.
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_body_gets_a_readable_413() {
    let app = TestApp::spawn_with(|config| config.max_body_bytes = 1024).await;
    let big = format!(
        r#"{{"query":"{{ concerts {{ id }} }}","pad":"{}"}}"#,
        "x".repeat(2_000_000)
    );
    let (status, body) = app.post_raw(big).await;
    assert_eq!(status, 413);
    assert_eq!(code(&body), "PAYLOAD_TOO_LARGE", "{body}");
    let (status, body) = app.post_raw("{\"query\": 42}").await;
    assert_eq!(status, 400);
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("not a GraphQL request"), "{message}");
    assert!(
        !message.contains("invalid type"),
        "serde's text leaked: {message}"
    );
}

/// One small document asking for the whole catalogue sixty times over is refused before it runs.
#[tokio::test(flavor = "multi_thread")]
async fn sixty_aliases_of_the_catalogue_are_refused() {
    let app = TestApp::spawn().await;
    let fields: String = (0..60)
        .map(|i| {
            format!("c{i}: concerts(limit: 100) {{ title schedules {{ seats {{ id status }} }} }} ")
        })
        .collect();
    let body = app.graphql(&format!("{{ {fields} }}")).await;
    assert_eq!(code(&body), "TOO_MANY_ALIASES", "{body}");
    assert!(body["data"].is_null(), "nothing runs: {body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("60 aliases"), "{message}");

    let few: String = (0..5)
        .map(|i| format!("c{i}: concerts(limit: 1) {{ id }} "))
        .collect();
    let body = app.graphql(&format!("{{ {few} }}")).await;
    assert!(body.get("errors").is_none(), "{body}");
}

/// scripts/graphql-clients, with its pinned npm packages installed (scripts/test runs `npm ci`
/// there before the tests).
fn clients_dir() -> std::path::PathBuf {
    let dir = crate::helpers::files::root().join("scripts/graphql-clients");
    assert!(
        dir.join("node_modules/graphql-http").exists()
            && dir.join("node_modules/puppeteer-core").exists(),
        "the npm packages are missing: run `npm ci` in {} (scripts/test does)",
        dir.display()
    );
    dir
}

/// Runs `script` of scripts/graphql-clients with Node; returns the JSON line it printed last and
/// whether it exited 0.
async fn run_client_script(script: &str, args: &[&str]) -> (Value, bool) {
    let output = tokio::process::Command::new("node")
        .arg(clients_dir().join(script))
        .args(args)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let printed = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| {
            panic!(
                "{script} printed no result: {stdout} {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    (printed, output.status.success())
}

/// The graphql-http audit suite (npm, pinned in scripts/graphql-clients) against this server:
/// every MUST of the GraphQL-over-HTTP specification, and at least 21 of its 23 SHOULDs.
#[tokio::test(flavor = "multi_thread")]
async fn the_graphql_over_http_audit_passes() {
    let app = TestApp::spawn().await;
    let (report, passed) = run_client_script("audit.mjs", &[&app.url("/graphql")]).await;
    assert_eq!(
        report["must"]["ok"], report["must"]["total"],
        "every MUST passes: {report:#}"
    );
    assert!(
        report["should"]["ok"].as_u64().unwrap_or(0) >= 21,
        "at least 21 SHOULDs pass: {report:#}"
    );
    assert!(passed, "{report:#}");
}

/// GraphiQL is served by the server itself: the page names no other host, and every asset it
/// loads is served here, with its licence shipped beside it in the repository.
#[tokio::test(flavor = "multi_thread")]
async fn graphiql_needs_no_cdn() {
    let app = TestApp::spawn().await;
    let page = app.get("/graphql").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|part| part.starts_with("/graphiql/"))
        .collect();
    assert_eq!(
        assets.len(),
        6,
        "css, React, ReactDOM, graphql-ws, GraphiQL, start: {assets:?}"
    );
    for asset in assets {
        let response = app.get(asset).await;
        assert_eq!(response.status(), 200, "{asset}");
        let media = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let expected = if asset.ends_with(".css") {
            "text/css"
        } else {
            "text/javascript"
        };
        assert!(media.starts_with(expected), "{asset}: {media}");
        assert!(
            response.bytes().await.unwrap().len() > 500,
            "{asset} has content"
        );
    }
    assert_eq!(app.get("/graphiql/nope.js").await.status(), 404);
    let vendor = crate::helpers::files::root().join("src/http/graphiql/vendor");
    for licence in ["graphiql", "react", "react-dom", "graphql-ws"] {
        assert!(
            vendor.join(format!("LICENSE.{licence}")).exists(),
            "{licence}'s licence"
        );
    }
}

/// GraphiQL in headless Chromium (the system's, driven by puppeteer-core), with no network beyond
/// loopback: the docs explorer shows the schema, a query and a `queueStatus` subscription run with
/// a bearer token, and a screenshot is saved (`SCREENSHOT` names where; the one in docs/ was made
/// this way).
#[tokio::test(flavor = "multi_thread")]
async fn graphiql_works_in_a_real_browser() {
    let (app, fans) = TestApp::staged(4, 1, 1_000, |_| {}).await;
    let queue_token = fans[0].queue_token.clone().expect("the fan's queue token");
    let screenshot = std::env::var("SCREENSHOT").unwrap_or_else(|_| {
        std::env::temp_dir()
            .join(format!("graphiql-{}.png", std::process::id()))
            .display()
            .to_string()
    });
    let (seen, passed) = run_client_script(
        "graphiql.mjs",
        &[&app.url("/"), &app.token_for(1), &queue_token, &screenshot],
    )
    .await;
    assert_eq!(seen["offLoopback"], serde_json::json!([]), "{seen:#}");
    assert!(
        seen["steps"]["docs"]
            .as_str()
            .unwrap_or("")
            .contains("Query"),
        "the docs explorer shows the schema: {seen:#}"
    );
    assert_eq!(seen["steps"]["query"]["data"]["me"]["id"], "1", "{seen:#}");
    let status = &seen["steps"]["subscription"]["data"]["queueStatus"]["status"];
    assert!(status == "ACTIVE" || status == "WAITING", "{seen:#}");
    assert!(passed, "{seen:#}");
    let size = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "a screenshot of the page: {size} bytes");
}

fn sha256(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Automatic persisted queries: a hash alone is unknown until the text was sent once with it.
#[tokio::test(flavor = "multi_thread")]
async fn automatic_persisted_queries_round_trip() {
    let app = TestApp::spawn().await;
    let query = "{ concerts(limit: 1) { id } }";
    let persisted =
        serde_json::json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256(query) } });

    let (status, body) = app
        .post_json(&serde_json::json!({ "extensions": persisted }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_FOUND", "{body}");
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");

    let (_, body) = app
        .post_json(&serde_json::json!({ "query": query, "extensions": persisted }))
        .await;
    assert!(body["data"]["concerts"].is_array(), "{body}");
    let (_, body) = app
        .post_json(&serde_json::json!({ "extensions": persisted }))
        .await;
    assert!(
        body["data"]["concerts"].is_array(),
        "the hash alone now runs it: {body}"
    );

    let wrong = serde_json::json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256("{ me { id } }") } });
    let (_, body) = app
        .post_json(&serde_json::json!({ "query": query, "extensions": wrong }))
        .await;
    assert_eq!(code(&body), "BAD_REQUEST", "{body}");
    assert!(
        !body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("provided sha"),
        "{body}"
    );
}

/// `GET` with a persisted query's hash alone runs the query (Apollo clients send hashed queries
/// that way); a mutation sent by its hash alone is still a mutation, and `GET` refuses it (405)
/// before anything runs. (The document is only known once the hash is looked up.)
#[tokio::test(flavor = "multi_thread")]
async fn persisted_queries_run_over_get_but_mutations_do_not() {
    let (app, fans) = TestApp::staged(4, 1, 0, |_| {}).await;
    let get_hash = |text: &str| {
        let persisted =
            serde_json::json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256(text) } });
        url::Url::parse_with_params(
            &app.url("/graphql"),
            [("extensions", persisted.to_string().as_str())],
        )
        .unwrap()
    };
    let query = "{ concerts(limit: 1) { id } }";
    let persisted =
        serde_json::json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256(query) } });
    app.post_json(&serde_json::json!({ "query": query, "extensions": persisted }))
        .await;
    let response = app
        .client
        .get(get_hash(query).as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["data"]["concerts"].is_array(), "{body}");

    let mutation = "mutation { enterQueue(concertId: \"1\") { token } }";
    let persisted =
        serde_json::json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256(mutation) } });
    // Remembered once, sent with its text (and without a caller: it is refused, not run).
    let (_, body) = app
        .post_json(&serde_json::json!({ "query": mutation, "extensions": persisted }))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");

    let mut get = app.client.get(get_hash(mutation).as_str());
    for (name, value) in app.headers_of(&fans[0]) {
        get = get.header(name, value);
    }
    let response = get.send().await.unwrap();
    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "BAD_REQUEST", "{body}");
}

/// Allow-list mode runs the registered operations only, by hash or as text.
#[tokio::test(flavor = "multi_thread")]
async fn the_allow_list_runs_registered_operations_only() {
    let registered = "{ concerts(limit: 1) { id } }";
    let file = std::env::temp_dir().join(format!("allowed-{}.json", std::process::id()));
    std::fs::write(
        &file,
        serde_json::json!({ sha256(registered): registered }).to_string(),
    )
    .unwrap();
    let path = file.clone();
    let app =
        TestApp::spawn_with(move |config| config.graphql_allowed_operations = Some(path)).await;

    let body = app.graphql(registered).await;
    assert!(body["data"]["concerts"].is_array(), "as text: {body}");
    let by_hash =
        serde_json::json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256(registered) } });
    let (_, body) = app
        .post_json(&serde_json::json!({ "extensions": by_hash }))
        .await;
    assert!(body["data"]["concerts"].is_array(), "by hash: {body}");

    for other in [
        "{ concerts(limit: 2) { id } }",
        "{ __schema { queryType { name } } }",
    ] {
        let body = app.graphql(other).await;
        assert_eq!(code(&body), "PERSISTED_QUERY_NOT_ALLOWED", "{body}");
        assert!(body["data"].is_null(), "nothing runs: {body}");
    }
    let unknown = serde_json::json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256("{ me { id } }") } });
    let (_, body) = app
        .post_json(&serde_json::json!({ "extensions": unknown }))
        .await;
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_ALLOWED", "{body}");
    let _ = std::fs::remove_file(file);
}

/// A list field costs what it can return: its `limit`, or the known bound of the list. The cost is
/// counted before anything runs, so the answer's size is bounded by `GRAPHQL_MAX_COMPLEXITY`.
#[tokio::test(flavor = "multi_thread")]
async fn list_fields_cost_what_they_can_return() {
    let app = TestApp::spawn_with(|config| config.graphql_max_complexity = 5_000).await;
    app.seed_catalogue(3, 1, 2).await;
    // 1 concert × (1 + 10 schedules × (1 + 100 seats × 2)) = 2,011.
    let one = "{ concerts(limit: 1) { title schedules { id seats { id status } } } }";
    let body = app.graphql(one).await;
    assert!(body.get("errors").is_none(), "{body}");
    // Three concerts: 6,033, though the answer would be small (the seed has 2 seats a schedule).
    for query in [
        "{ concerts(limit: 3) { title schedules { id seats { id status } } } }",
        "{ concerts { title schedules { id seats { id status } } } }",
    ] {
        let body = app.graphql(query).await;
        assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
        assert!(body["data"].is_null(), "nothing runs: {body}");
    }
    // Without seats the same pages are cheap.
    let body = app
        .graphql("{ concerts(limit: 100) { title schedules { id availableSeats } } }")
        .await;
    assert!(body.get("errors").is_none(), "{body}");
}

/// At the default limits, the README's first query runs and sixty aliases of it do not.
#[tokio::test(flavor = "multi_thread")]
async fn the_default_cost_limit_lets_the_catalogue_through_but_not_sixty_copies() {
    let app = TestApp::spawn_with(|config| config.graphql_max_aliases = 100).await;
    app.seed_catalogue(2, 2, 3).await;
    let catalogue = "concerts { title schedules { startsAt venue availableSeats seats { number grade status price } } }";
    let body = app.graphql(&format!("{{ {catalogue} }}")).await;
    assert!(body.get("errors").is_none(), "{body}");
    let sixty: String = (0..60).map(|i| format!("c{i}: {catalogue} ")).collect();
    let body = app.graphql(&format!("{{ {sixty} }}")).await;
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
}
