//! What every HTTP handler shares, and the request headers the API defines.

/// The header holds and payments read the caller's queue token from.
pub const QUEUE_TOKEN_HEADER: &str = "queue-token";

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    pub app: crate::app::App,
    pub api: crate::graphql::AppApi,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}
