//! The HTTP edge: routes, health and metrics endpoints, subscriptions over websockets, and the
//! browser-facing layers (CORS, timeout). GraphQL over HTTP itself is in [`graphql`].

mod graphiql;
mod graphql;
mod state;

pub use state::{AppState, QUEUE_TOKEN_HEADER};

use std::time::Duration;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::graphql::Loaders;

/// How long each dependency may take to answer `/readyz`.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Read and write buffer of one websocket connection.
const WS_BUFFER_BYTES: usize = 4 * 1024;

pub fn router(state: AppState) -> Router {
    let config = state.app.config.clone();
    Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/graphql/ws", get(graphql_ws))
        .route("/graphiql/{file}", get(graphiql::asset))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(cors(&config))
        // Backstop for every route; GraphQL requests time out first, with a GraphQL error.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout() + Duration::from_secs(1),
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn cors(config: &Config) -> CorsLayer {
    let origins = &config.cors_allowed_origins;
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::HeaderName::from_static(QUEUE_TOKEN_HEADER),
        ])
        .max_age(Duration::from_secs(600))
}

/// `GET /graphql/ws`: subscriptions over graphql-transport-ws or the legacy graphql-ws protocol.
async fn graphql_ws(
    State(state): State<AppState>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let max_message = state.app.config.max_body_bytes;
    upgrade
        // A subscriber receives small messages and sends almost none: tungstenite's default
        // 128 KiB read and write buffers made each idle connection cost ~155 kB
        // (docs/results/subscriptions.md). Messages are bounded like request bodies.
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(WS_BUFFER_BYTES)
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let app = state.app.clone();
            GraphQLWebSocket::new(socket, state.api.clone(), protocol)
                .on_connection_init(move |payload| async move { connection_data(&app, &payload) })
                .serve()
        })
}

/// Authenticates a websocket from the `Authorization: Bearer <JWT>` entry of its
/// `connection_init` payload (the graphql-ws / Apollo convention). No entry: anonymous; a bad
/// token: the connection is refused.
fn connection_data(
    app: &crate::app::App,
    payload: &serde_json::Value,
) -> async_graphql::Result<async_graphql::Data> {
    let authorization = ["Authorization", "authorization"]
        .iter()
        .find_map(|key| payload.get(key))
        .and_then(serde_json::Value::as_str);
    let identity = app.auth.identify(authorization);
    if let crate::auth::Identity::Invalid(reason) = &identity {
        return Err(async_graphql::Error::new(reason.clone()));
    }
    let mut data = async_graphql::Data::default();
    data.insert(Loaders::new(&app.db, &app.seat_map, &app.concerts));
    data.insert(identity);
    Ok(data)
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: PostgreSQL and Redis answer (503 names the one that does not). Kafka is reported
/// but does not make an instance unready: without it fans can still hold and pay (events wait in
/// the outbox, the backstop frees seats), so a load balancer must not take every instance out.
async fn readyz(State(state): State<AppState>) -> Response {
    let app = &state.app;
    let (postgres, redis, kafka) = tokio::join!(
        check("postgres", app.db.ping()),
        check("redis", app.redis.ping()),
        check("kafka", app.kafka.ping()),
    );
    let ready = postgres && redis;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    let body = json!({
        "status": match (ready, kafka) {
            (false, _) => "not ready",
            (true, false) => "ready, degraded: Kafka is unreachable",
            (true, true) => "ready",
        },
        "checks": { "postgres": word(postgres), "redis": word(redis), "kafka": word(kafka) },
    });
    (status, Json(body)).into_response()
}

async fn check<E: std::fmt::Debug>(name: &str, probe: impl Future<Output = Result<(), E>>) -> bool {
    match tokio::time::timeout(READY_CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => true,
        Ok(Err(err)) => {
            tracing::warn!(dependency = name, error = ?err, "readiness check failed");
            false
        }
        Err(_) => {
            tracing::warn!(dependency = name, "readiness check timed out");
            false
        }
    }
}

/// Prometheus text format.
async fn metrics(State(state): State<AppState>) -> String {
    state.app.db.record_pool_metrics();
    state.app.redis.record_pool_metrics();
    crate::metrics::record_process_metrics();
    state.metrics.render()
}
