//! Building and running one server instance: `main` and the tests both go through
//! [`Application::build`].

use std::net::SocketAddr;

use tokio::net::TcpListener;

use tokio_util::sync::{CancellationToken, DropGuard};

use crate::app::App;
use crate::booking::expiry::consumer::{self, ExpiryHandler};
use crate::booking::expiry::sweeper::Sweeper;
use crate::config::Config;
use crate::db::Database;
use crate::events::relay::Relay;
use crate::graphql;
use crate::http::AppState;
use crate::queue::admitter::Admitter;
use crate::redis_store::RedisStore;

/// Starts the background work of this instance, each with the handles it uses: the queue
/// admitter (unless QUEUE_TICK_MS is 0), the booking-load publisher, the outbox relay, the expiry sweeper and consumer, the
/// pub/sub router and the presence refresher. All stop when `cancel` fires.
fn spawn_background(app: &App, cancel: &CancellationToken) -> anyhow::Result<()> {
    let config = &app.config;
    // The background work has a pool of its own: under overload, requests hold every connection
    // of theirs, and admission, the outbox and expiry must still move.
    let background_db = Database::connect_sized(config, config.database_background_pool_size);
    if config.queue_tick_ms > 0 {
        let own_pool = app.queue.with_store(RedisStore::connect_sized(config, 2)?);
        tokio::spawn(Admitter::new(own_pool, background_db.clone()).run(cancel.clone()));
    }
    tokio::spawn(crate::queue::pressure::run_publisher(
        app.queue.clone(),
        app.booking_limit.clone(),
        cancel.clone(),
    ));
    if config.outbox_relay_interval_ms > 0 {
        let relay = Relay::new(background_db.clone(), app.kafka.clone(), config);
        tokio::spawn(relay.run(cancel.clone()));
    }
    if config.expiry_sweep_interval_ms > 0 {
        let sweeper = Sweeper::new(
            background_db.clone(),
            app.seat_map.clone(),
            app.queue.clone(),
            config,
        );
        tokio::spawn(sweeper.run(cancel.clone()));
    }
    if config.kafka_consumer_enabled {
        let consumer = consumer::create(config)?;
        let handler = ExpiryHandler::new(
            background_db.clone(),
            app.seat_map.clone(),
            app.queue.clone(),
        );
        tokio::spawn(consumer::run(handler, consumer, cancel.clone()));
    }
    let (queue, broadcast, seat_map) = (
        app.queue.clone(),
        app.queue_broadcast.clone(),
        app.seat_map.clone(),
    );
    let (redis_url, router_cancel) = (config.redis_url.clone(), cancel.clone());
    tokio::spawn(async move {
        crate::pubsub::route(redis_url, &queue, broadcast, seat_map, router_cancel).await;
    });
    let presence_period =
        std::time::Duration::from_millis((config.queue_waiting_grace_seconds * 1000 / 3).max(500));
    tokio::spawn(app.queue_broadcast.clone().run_presence(
        app.queue.clone(),
        presence_period,
        cancel.clone(),
    ));
    Ok(())
}

/// A server bound to its address, ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// Cancels the background tasks when the application stops (or is dropped unstarted).
    background: DropGuard,
}

impl Application {
    /// Connects the services, creates the Kafka topics (if the broker answers) and binds the
    /// listener (port 0 picks a free port, as tests do).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let metrics = crate::metrics::install_recorder();
        let listener = TcpListener::bind(config.bind_addr).await?;
        if config.uses_dev_jwt_secret() {
            tracing::warn!(
                "JWT_SECRET is the development default: set it in every real deployment"
            );
        }
        let app = App::connect(config)?;
        // Kafka is not needed to serve: holds, payments and expiry write the outbox, which waits
        // for the broker, and the relay creates missing topics when it is back. An instance
        // (re)started during a broker outage must still come up.
        if let Err(err) = app.kafka.ensure_topics().await {
            tracing::warn!(error = %err, "Kafka is unreachable at start-up; serving without it until it is back");
        }
        let background = CancellationToken::new();
        spawn_background(&app, &background)?;
        let schema = graphql::build_schema(app.clone());
        Ok(Self {
            listener,
            state: AppState {
                app,
                schema,
                metrics,
            },
            background: background.drop_guard(),
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
        let _stop_background = self.background;
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
