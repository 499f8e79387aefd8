//! The HTTP edge: routes, the GraphQL handlers, health and metrics endpoints, and the
//! browser-facing layers (CORS, body limit, timeout).

use std::time::Duration;

use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, BatchResponse};
use async_graphql_axum::{GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::Either;
use serde_json::json;
use tokio_util::task::AbortOnDropHandle;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::error::AppError;
use crate::graphql::{Loaders, QueueTokenHeader};

/// The header holds and payments read the caller's queue token from.
pub const QUEUE_TOKEN_HEADER: &str = "queue-token";

/// How long each dependency may take to answer `/readyz`.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Read and write buffer of one websocket connection.
const WS_BUFFER_BYTES: usize = 4 * 1024;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    pub app: crate::app::App,
    pub schema: crate::graphql::AppSchema,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

pub fn router(state: AppState) -> Router {
    let config = state.app.config.clone();
    Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
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

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .finish(),
    )
}

/// `POST /graphql`: one operation or a batch. Request-level failures (unreadable body, too large,
/// too many operations, timeout) still answer in GraphQL's error shape with a stable code.
async fn graphql(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let config = &state.app.config;
    let batch = match parse_batch(body, config) {
        Ok(batch) => batch,
        Err((status, err)) => return error_response(status, err),
    };
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let identity = state
        .app
        .auth
        .identify(header(header::AUTHORIZATION.as_str()));
    let queue_token = QueueTokenHeader(header(QUEUE_TOKEN_HEADER).map(str::to_owned));
    let batch = batch
        .data(Loaders::new(
            &state.app.db,
            &state.app.seat_map,
            &state.app.concerts,
        ))
        .data(identity)
        .data(queue_token);
    execute_within_timeout(&state, batch).await
}

/// Runs the batch on a task of its own and answers within the request timeout.
///
/// A mutation is never cut off half-way: once started it runs to its end (its transaction
/// commits or rolls back; the database's own timeouts bound it) even if the timer fires or the
/// client goes away, and a timed-out mutation answers `TIMEOUT` with "outcome unknown, retry
/// with the same idempotency key". Queries are aborted on timeout or disconnect: nobody is
/// waiting for them and they change nothing.
async fn execute_within_timeout(state: &AppState, mut batch: BatchRequest) -> Response {
    let config = &state.app.config;
    let mutates = batch.iter_mut().any(has_mutation);
    let schema = state.schema.clone();
    let task = tokio::spawn(async move { schema.execute_batch(batch).await });
    let mut task = if mutates {
        Either::Left(task) // dropping a JoinHandle detaches the task
    } else {
        Either::Right(AbortOnDropHandle::new(task))
    };
    match tokio::time::timeout(config.request_timeout(), &mut task).await {
        Ok(Ok(response)) => GraphQLResponse::from(response).into_response(),
        Ok(Err(join_error)) => {
            tracing::error!(error = %join_error, "a GraphQL execution task failed");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                AppError::Internal(anyhow::anyhow!("execution task failed: {join_error}")),
            )
        }
        Err(_) if mutates => error_response(
            StatusCode::OK,
            AppError::MutationTimeout(config.request_timeout_ms),
        ),
        Err(_) => error_response(StatusCode::OK, AppError::Timeout(config.request_timeout_ms)),
    }
}

/// Whether the request's document defines a mutation (an unparsable one does not: it fails
/// before anything runs). The parsed document is kept on the request, so it is parsed once.
fn has_mutation(request: &mut async_graphql::Request) -> bool {
    request.parsed_query().is_ok_and(|document| {
        document
            .operations
            .iter()
            .any(|(_, operation)| operation.node.ty == OperationType::Mutation)
    })
}

fn parse_batch(
    body: Result<Bytes, BytesRejection>,
    config: &Config,
) -> Result<BatchRequest, (StatusCode, AppError)> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => (
            StatusCode::PAYLOAD_TOO_LARGE,
            AppError::PayloadTooLarge(config.max_body_bytes),
        ),
        status => (status, AppError::BadRequest(rejection.body_text())),
    })?;
    let batch: BatchRequest = serde_json::from_slice(&body).map_err(|err| {
        (
            StatusCode::BAD_REQUEST,
            AppError::BadRequest(err.to_string()),
        )
    })?;
    let operations = batch.iter().count();
    if operations == 0 {
        return Err((
            StatusCode::BAD_REQUEST,
            AppError::BadRequest("the batch is empty".into()),
        ));
    }
    if batch.iter().any(|request| request.query.trim().is_empty()) {
        return Err((
            StatusCode::BAD_REQUEST,
            AppError::BadRequest("a request has no `query`".into()),
        ));
    }
    if operations > config.graphql_max_batch {
        return Err((
            StatusCode::BAD_REQUEST,
            AppError::BatchTooLarge(config.graphql_max_batch),
        ));
    }
    Ok(batch)
}

fn error_response(status: StatusCode, err: AppError) -> Response {
    let err = async_graphql::Error::from(err);
    let mut error = async_graphql::ServerError::new(err.message, None);
    error.extensions = err.extensions;
    let body = BatchResponse::Single(async_graphql::Response::from_errors(vec![error]));
    let mut response = GraphQLResponse::from(body).into_response();
    *response.status_mut() = status;
    response
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
            GraphQLWebSocket::new(socket, state.schema.clone(), protocol)
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
