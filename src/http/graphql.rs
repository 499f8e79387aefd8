//! GraphQL over HTTP (the GraphQL-over-HTTP specification): `POST /graphql` with a JSON body (one
//! operation or a batch), `GET /graphql?query=...` for queries (never mutations), and GraphiQL
//! for a browser's `GET /graphql` without a query.
//!
//! The answer's media type follows the request's `Accept`:
//! - `application/graphql-response+json` (what spec-following clients ask for): a request that
//!   fails before it runs (unparsable, invalid against the schema, over a limit) answers 4xx
//!   without `data`; one that ran answers 200.
//! - anything else, or no `Accept` (`application/json`, `*/*`; every existing client): the legacy
//!   `application/json` answer, 200 with `data: null` and the errors.
//!
//! Request-level failures (unreadable or oversized body, too many operations, timeout) still
//! answer in GraphQL's error shape with a stable code.

use async_graphql::{BatchRequest, BatchResponse};
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::future::Either;
use serde::Deserialize;
use tokio_util::task::AbortOnDropHandle;

use super::state::{AppState, QUEUE_TOKEN_HEADER};
use crate::config::Config;
use crate::error::{AppError, code};
use crate::graphql::{Loaders, PreparedBatch, QueueTokenHeader};

/// How much of an oversized body is still read (and thrown away) before the 413 is sent, so a
/// browser still uploading reads the answer instead of a reset connection; a larger body is cut
/// off.
const DRAIN_LIMIT_BYTES: usize = 16 * 1024 * 1024;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// The codes of requests refused before anything ran.
const REQUEST_ERRORS: [&str; 10] = [
    code::GRAPHQL_PARSE_FAILED,
    code::GRAPHQL_VALIDATION_FAILED,
    code::QUERY_TOO_DEEP,
    code::QUERY_TOO_COMPLEX,
    code::TOO_MANY_DIRECTIVES,
    code::INTROSPECTION_DISABLED,
    code::TOO_MANY_ALIASES,
    code::PERSISTED_QUERY_NOT_FOUND,
    code::PERSISTED_QUERY_NOT_ALLOWED,
    code::BAD_USER_INPUT,
];

/// The media type an answer is written in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `application/json`: always 200, `data: null` when nothing ran.
    Json,
    /// `application/graphql-response+json`: 4xx without `data` when nothing ran.
    GraphqlResponse,
}

impl Format {
    fn of(headers: &HeaderMap) -> Self {
        let accepts = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|item| item.split(';').next().unwrap_or("").trim());
        for media in accepts {
            if media.eq_ignore_ascii_case(GRAPHQL_RESPONSE_JSON) {
                return Self::GraphqlResponse;
            }
            if media.eq_ignore_ascii_case("application/json") {
                return Self::Json;
            }
        }
        Self::Json
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Json => "application/json; charset=utf-8",
            Self::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
        })
    }
}

/// `POST /graphql`: one operation or a batch.
pub(super) async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let format = Format::of(&headers);
    let config = &state.app.config;
    let batch = match read_body(body, config.max_body_bytes)
        .await
        .and_then(|body| parse_batch(&body, config))
    {
        Ok(batch) => batch,
        Err((status, err)) => return error_response(format, status, err),
    };
    run(&state, &headers, batch, format, Method::Post).await
}

/// How the request came: a `GET` may not run a mutation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

/// The parameters of `GET /graphql`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    /// JSON, URL-encoded.
    variables: Option<String>,
    /// JSON, URL-encoded (persisted-query hashes travel here).
    extensions: Option<String>,
}

/// `GET /graphql`: a query (or a persisted query's hash) from the URL's parameters; without
/// either, GraphiQL (a browser).
pub(super) async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<GetParams>, QueryRejection>,
) -> Response {
    let format = Format::of(&headers);
    let params = match params {
        Ok(Query(params)) => params,
        Err(_) => {
            return error_response(
                format,
                StatusCode::BAD_REQUEST,
                AppError::BadRequest("the URL's parameters cannot be read".into()),
            );
        }
    };
    let query = params.query.filter(|query| !query.trim().is_empty());
    if query.is_none() && params.extensions.is_none() {
        // A browser: neither a query nor a persisted query's hash.
        return super::graphiql::page().into_response();
    }
    let mut request = async_graphql::Request::new(query.unwrap_or_default());
    request.operation_name = params.operation_name;
    match json_param(params.variables.as_deref(), "variables") {
        Ok(Some(variables)) => {
            request.variables = async_graphql::Variables::from_json(variables);
        }
        Ok(None) => {}
        Err(err) => return error_response(format, StatusCode::BAD_REQUEST, err),
    }
    match json_param(params.extensions.as_deref(), "extensions") {
        Ok(Some(serde_json::Value::Object(extensions))) => {
            for (name, value) in extensions {
                request.extensions.insert(
                    name,
                    async_graphql::Value::from_json(value).unwrap_or_default(),
                );
            }
        }
        Ok(Some(_)) => {
            return error_response(
                format,
                StatusCode::BAD_REQUEST,
                AppError::BadRequest("`extensions` must be a JSON object".into()),
            );
        }
        Ok(None) => {}
        Err(err) => return error_response(format, StatusCode::BAD_REQUEST, err),
    }
    run(
        &state,
        &headers,
        BatchRequest::Single(request),
        format,
        Method::Get,
    )
    .await
}

/// A JSON-encoded URL parameter, if present.
fn json_param(value: Option<&str>, name: &str) -> Result<Option<serde_json::Value>, AppError> {
    match value.filter(|value| !value.trim().is_empty()) {
        None => Ok(None),
        Some(value) => serde_json::from_str(value)
            .map(Some)
            .map_err(|_| AppError::BadRequest(format!("`{name}` must be JSON"))),
    }
}

/// Adds what resolvers read from the request (loaders, the caller, the queue token), prepares
/// each operation (its document, resolved from a persisted-query hash if need be), then runs.
async fn run(
    state: &AppState,
    headers: &HeaderMap,
    batch: BatchRequest,
    format: Format,
    method: Method,
) -> Response {
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
    let batch = state.api.prepare_batch(batch).await;
    if method == Method::Get && batch.mutates() {
        let mut response = error_response(
            format,
            StatusCode::METHOD_NOT_ALLOWED,
            AppError::BadRequest("mutations are sent with POST, not GET".into()),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    execute_within_timeout(state, batch, format).await
}

/// Runs the batch on a task of its own and answers within the request timeout.
///
/// A mutation is never cut off half-way: once started it runs to its end (its transaction
/// commits or rolls back; the database's own timeouts bound it) even if the timer fires or the
/// client goes away, and a timed-out mutation answers `TIMEOUT` with "outcome unknown, retry
/// with the same idempotency key". Queries are aborted on timeout or disconnect: nobody is
/// waiting for them and they change nothing.
async fn execute_within_timeout(
    state: &AppState,
    batch: PreparedBatch,
    format: Format,
) -> Response {
    let config = &state.app.config;
    let mutates = batch.mutates();
    let api = state.api.clone();
    let task = tokio::spawn(
        crate::metrics::GRAPHQL_TASKS.instrument(async move { api.run_batch(batch).await }),
    );
    let mut task = if mutates {
        Either::Left(task) // dropping a JoinHandle detaches the task
    } else {
        Either::Right(AbortOnDropHandle::new(task))
    };
    match tokio::time::timeout(config.request_timeout(), &mut task).await {
        Ok(Ok(response)) => respond(format, response),
        Ok(Err(join_error)) => {
            tracing::error!(error = %join_error, "a GraphQL execution task failed");
            error_response(
                format,
                StatusCode::INTERNAL_SERVER_ERROR,
                AppError::Internal(anyhow::anyhow!("execution task failed: {join_error}")),
            )
        }
        Err(_) if mutates => error_response(
            format,
            StatusCode::OK,
            AppError::MutationTimeout(config.request_timeout_ms),
        ),
        Err(_) => error_response(
            format,
            StatusCode::OK,
            AppError::Timeout(config.request_timeout_ms),
        ),
    }
}

/// Reads a body of at most `limit` bytes. A larger one is still read to its end (up to
/// [`DRAIN_LIMIT_BYTES`], thrown away) before the 413, so the client reads the answer.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, (StatusCode, AppError)> {
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                AppError::BadRequest("the request body could not be read to its end".into()),
            )
        })?;
        total = total.saturating_add(chunk.len());
        if total <= limit {
            kept.extend_from_slice(&chunk);
        } else if total > DRAIN_LIMIT_BYTES {
            break;
        }
    }
    if total > limit {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            AppError::PayloadTooLarge(limit),
        ));
    }
    Ok(Bytes::from(kept))
}

fn parse_batch(body: &[u8], config: &Config) -> Result<BatchRequest, (StatusCode, AppError)> {
    let bad = |message: String| (StatusCode::BAD_REQUEST, AppError::BadRequest(message));
    let batch: BatchRequest = serde_json::from_slice(body).map_err(|err| {
        bad(match err.classify() {
            serde_json::error::Category::Data => {
                "the body is JSON but not a GraphQL request: send an object with a `query` string (and optionally `variables` and `operationName`), or a list of them".into()
            }
            _ => format!(
                "the body is not valid JSON (line {}, column {})",
                err.line(),
                err.column()
            ),
        })
    })?;
    let operations = batch.iter().count();
    if operations == 0 {
        return Err(bad("the batch is empty".into()));
    }
    // A persisted query may come as its hash alone (`extensions.persistedQuery`).
    if batch.iter().any(|request| {
        request.query.trim().is_empty() && !request.extensions.contains_key("persistedQuery")
    }) {
        return Err(bad("a request has no `query`".into()));
    }
    if operations > config.graphql_max_batch {
        return Err((
            StatusCode::BAD_REQUEST,
            AppError::BatchTooLarge(config.graphql_max_batch),
        ));
    }
    Ok(batch)
}

/// The single operation that was refused while parsed or validated (nothing of it ran).
fn refused_before_running(response: &BatchResponse) -> Option<&async_graphql::Response> {
    let BatchResponse::Single(response) = response else {
        return None;
    };
    let refused = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| {
            error
                .extensions
                .as_ref()
                .and_then(|extensions| extensions.get("code"))
                .is_some_and(|code| {
                    matches!(code, async_graphql::Value::String(code) if REQUEST_ERRORS.contains(&code.as_str()))
                })
        });
    refused.then_some(response)
}

/// Writes a response in `format`, with the status the format calls for.
fn respond(format: Format, response: BatchResponse) -> Response {
    // Serialized from the response itself: a serde_json::Value would sort the fields by name.
    let (status, body) = match refused_before_running(&response) {
        Some(refused) if format == Format::GraphqlResponse => (
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "errors": refused.errors }).to_string(),
        ),
        _ => (
            StatusCode::OK,
            serde_json::to_string(&response).unwrap_or_else(|err| {
                tracing::error!(error = %err, "a GraphQL response could not be serialized");
                String::new()
            }),
        ),
    };
    with_status(format, status, body, response.http_headers())
}

/// A request-level failure in GraphQL's error shape (no `data`: nothing ran).
fn error_response(format: Format, status: StatusCode, err: AppError) -> Response {
    let err = async_graphql::Error::from(err);
    let mut error = async_graphql::ServerError::new(err.message, None);
    error.extensions = err.extensions;
    let body = match format {
        Format::Json => serde_json::json!({ "data": null, "errors": [error] }),
        Format::GraphqlResponse => serde_json::json!({ "errors": [error] }),
    };
    with_status(format, status, body.to_string(), HeaderMap::new())
}

fn with_status(format: Format, status: StatusCode, body: String, headers: HeaderMap) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().extend(headers);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, format.content_type());
    response
}
