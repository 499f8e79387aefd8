//! What every HTTP handler shares, and the request headers the API defines.

use std::ops::Deref;
use std::sync::Arc;

/// The header holds and payments read the caller's queue token from.
pub const QUEUE_TOKEN_HEADER: &str = "queue-token";

/// What the HTTP handlers share. axum clones the state for every request, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub app: crate::app::App,
    pub api: crate::graphql::AppApi,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

impl AppState {
    pub fn new(
        app: crate::app::App,
        api: crate::graphql::AppApi,
        metrics: metrics_exporter_prometheus::PrometheusHandle,
    ) -> Self {
        Self(Arc::new(Shared { app, api, metrics }))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
