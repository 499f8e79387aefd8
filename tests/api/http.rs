//! The HTTP edge: health, readiness against the real services, metrics, CORS, GraphiQL and the
//! websocket endpoint speaking both subscription protocols.

use crate::helpers::TestApp;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test(flavor = "multi_thread")]
async fn healthz_answers() {
    let app = TestApp::spawn().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_checks_postgres_redis_and_kafka() {
    let app = TestApp::spawn().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["checks"],
        json!({ "postgres": "ok", "redis": "ok", "kafka": "ok" })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_names_an_unreachable_dependency() {
    // Nothing listens on port 1.
    let app = TestApp::spawn_with(|config| config.redis_url = "redis://127.0.0.1:1".into()).await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["redis"], "unreachable");
    assert_eq!(body["checks"]["postgres"], "ok");
}

/// An instance started while Kafka is down comes up and stays ready: nothing fans do needs the
/// broker at once (the outbox waits for it).
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_starts_and_stays_ready_without_kafka() {
    let app = TestApp::spawn_with(|config| config.kafka_brokers = "127.0.0.1:1".into()).await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["kafka"], "unreachable");
    assert_eq!(body["checks"]["postgres"], "ok");
    assert_eq!(body["status"], "ready, degraded: Kafka is unreachable");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_export_graphql_histograms() {
    let app = TestApp::spawn().await;
    app.graphql("{ concerts { id } }").await;
    app.graphql("{ concerts { nope } }").await;

    let text = app.get("/metrics").await.text().await.unwrap();

    assert!(
        text.contains(r#"graphql_requests_total{operation="concerts",outcome="ok"}"#),
        "{text}"
    );
    assert!(
        text.contains("graphql_request_duration_seconds_bucket{"),
        "histograms, not summaries: {text}"
    );
    assert!(
        text.contains(r#"code="GRAPHQL_VALIDATION_FAILED""#),
        "{text}"
    );
    assert!(text.contains("db_statements_total"), "{text}");
    assert!(text.contains("db_pool_connections"), "{text}");
}

/// The server reports how long its connection and GraphQL tasks waited for a worker thread.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_export_task_scheduling() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        app.graphql("{ concerts { id } }").await;
    }
    let text = app.get("/metrics").await.text().await.unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in {text}"))
    };
    for task in ["connection", "graphql"] {
        let polled = value(&format!(
            r#"task_first_poll_delay_seconds_count{{task="{task}"}}"#
        ));
        assert!(polled >= 1.0, "{task} tasks were polled: {polled}");
        let polls = value(&format!(r#"task_poll_seconds_count{{task="{task}"}}"#));
        assert!(polls >= polled, "{task}: {polls} polls");
        assert!(value(&format!(r#"task_poll_seconds_sum{{task="{task}"}}"#)) > 0.0);
    }
    assert!(
        value(r#"task_first_poll_delay_seconds_count{task="graphql"}"#) >= 3.0,
        "one GraphQL task per request"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_allows_only_configured_origins() {
    let app = TestApp::spawn_with(|config| {
        config.cors_allowed_origins = vec!["https://tickets.example".into()]
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization",
            )
            .send()
    };

    let allowed = preflight("https://tickets.example").await.unwrap();
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        "https://tickets.example"
    );

    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn graphiql_is_served_on_get() {
    let app = TestApp::spawn().await;
    let response = app.get("/graphql").await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("graphiql"), "{html}");
    let script = app.get("/graphiql/start.js").await.text().await.unwrap();
    assert!(
        script.contains("'/graphql'") && script.contains("+ '/ws'"),
        "subscriptions go to /graphql/ws: {script}"
    );
}

async fn websocket_handshake(app: &TestApp, protocol: &str) -> Value {
    let mut request = format!("ws://{}/graphql/ws", app.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocol.parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket upgrade");
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        protocol
    );
    socket
        .send(Message::text(
            json!({ "type": "connection_init", "payload": {} }).to_string(),
        ))
        .await
        .unwrap();
    loop {
        let message = socket.next().await.expect("a reply").expect("a frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_speaks_graphql_transport_ws() {
    let app = TestApp::spawn().await;
    let reply = websocket_handshake(&app, "graphql-transport-ws").await;
    assert_eq!(reply["type"], "connection_ack");
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_speaks_legacy_graphql_ws() {
    let app = TestApp::spawn().await;
    let reply = websocket_handshake(&app, "graphql-ws").await;
    assert_eq!(reply["type"], "connection_ack");
}

/// A websocket message larger than a request body may be (MAX_BODY_BYTES) closes the connection
/// instead of being buffered; normal messages on a fresh connection still work.
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_websocket_message_closes_the_connection() {
    let app = TestApp::spawn_with(|config| config.max_body_bytes = 8 * 1024).await;
    let mut socket = crate::helpers::ws::connect(&app, json!({})).await;
    assert_eq!(
        crate::helpers::ws::next_json(&mut socket).await.unwrap()["type"],
        "connection_ack"
    );
    let huge =
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "x".repeat(20 * 1024) } });
    let _ = socket.send(Message::text(huge.to_string())).await;
    assert_eq!(
        crate::helpers::ws::next_json(&mut socket).await,
        None,
        "the server closes the connection"
    );
    let mut fresh = crate::helpers::ws::connect(&app, json!({})).await;
    assert_eq!(
        crate::helpers::ws::next_json(&mut fresh).await.unwrap()["type"],
        "connection_ack"
    );
}

/// A fan who polls when `pollAfterSeconds` says may be silent for up to a minute (the pre-queue's
/// hint), so the server keeps an idle keep-alive connection open for longer than that. hyper's
/// default closed it after 30 s, as the fan sent on it: a Go client (k6) answered `EOF`. Here the
/// connection sits idle for 31 s and the next request on it is still answered.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keep_alive_connection_outlives_hyper_s_default() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn healthz(stream: &mut tokio::net::TcpStream) -> String {
        let request = "GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n";
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buffer = vec![0u8; 4096];
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buffer))
                .await
                .expect("the server answers within 5 s")
                .unwrap_or(0);
        String::from_utf8_lossy(&buffer[..read]).into_owned()
    }

    let app = TestApp::spawn().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    assert!(healthz(&mut stream).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(std::time::Duration::from_secs(31)).await;
    let second = healthz(&mut stream).await;
    assert!(
        second.starts_with("HTTP/1.1 200"),
        "the idle connection was closed: {second:?}"
    );
}
