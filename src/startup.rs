//! Building and running one server instance: `main` and the tests both go through
//! [`Application::build`].

use std::net::SocketAddr;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::db::Database;
use crate::events::Kafka;
use crate::graphql::{self, AppSchema};
use crate::redis_store::RedisStore;

/// The shared runtime: configuration and the clients of every backing service, created once.
#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub db: Database,
    pub redis: RedisStore,
    pub kafka: Kafka,
}

impl Services {
    /// Creates the pools and the producer. None of them needs its service to be up yet.
    pub fn connect(config: Config) -> anyhow::Result<Self> {
        Ok(Self {
            db: Database::connect(&config),
            redis: RedisStore::connect(&config)?,
            kafka: Kafka::connect(&config)?,
            config: Arc::new(config),
        })
    }
}

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub schema: AppSchema,
    pub metrics: PrometheusHandle,
}

/// A server bound to its address, ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Connects the services, creates the Kafka topics and binds the listener (port 0 picks a
    /// free port, as tests do).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let metrics = crate::metrics::install_recorder();
        let listener = TcpListener::bind(config.bind_addr).await?;
        let services = Services::connect(config)?;
        services.kafka.ensure_topics().await?;
        let schema = graphql::build_schema(services.clone());
        Ok(Self {
            listener,
            state: AppState {
                services,
                schema,
                metrics,
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = crate::http::router(self.state);
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

/// Completes on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received, finishing in-flight requests");
}
