//! Building and running one server instance: `main` and the tests both go through
//! [`Application::build`].

use std::net::SocketAddr;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::booking::seat_map::SeatMap;
use crate::catalogue::ConcertDirectory;
use crate::config::{Config, DEV_JWT_SECRET};
use crate::db::Database;
use crate::events::Kafka;
use crate::graphql::{self, AppSchema};
use crate::queue::admitter::Admitter;
use crate::queue::{Queue, QueueBroadcast, QueueSettings};
use crate::redis_store::RedisStore;
use tokio_util::sync::{CancellationToken, DropGuard};

/// The shared runtime: configuration and the clients of every backing service, created once.
#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub db: Database,
    pub redis: RedisStore,
    pub kafka: Kafka,
    pub auth: Authenticator,
    pub queue: Queue,
    pub queue_broadcast: Arc<QueueBroadcast>,
    pub concerts: ConcertDirectory,
    pub seat_map: SeatMap,
}

impl Services {
    /// Creates the pools and the producer. None of them needs its service to be up yet.
    pub fn connect(config: Config) -> anyhow::Result<Self> {
        let redis = RedisStore::connect(&config)?;
        Ok(Self {
            db: Database::connect(&config),
            queue: Queue::new(redis.clone(), QueueSettings::from_config(&config)),
            queue_broadcast: Arc::default(),
            concerts: ConcertDirectory::default(),
            seat_map: SeatMap::new(redis.clone(), config.seat_map_cache_ttl_seconds),
            redis,
            kafka: Kafka::connect(&config)?,
            auth: Authenticator::new(&config),
            config: Arc::new(config),
        })
    }

    /// Starts the background work of this instance: the queue admitter (unless QUEUE_TICK_MS is
    /// 0), the tick listener and the presence refresher. All stop when `cancel` fires.
    pub fn spawn_background(&self, cancel: &CancellationToken) -> anyhow::Result<()> {
        let config = &self.config;
        if config.queue_tick_ms > 0 {
            let own_pool = self.queue.with_store(RedisStore::connect_sized(config, 2)?);
            tokio::spawn(Admitter::new(own_pool).run(cancel.clone()));
        }
        let (ticks, seat_changes) = (self.queue.ticks_channel(), self.seat_map.channel());
        let (broadcast, seat_map) = (self.queue_broadcast.clone(), self.seat_map.clone());
        let dispatch = move |channel: &str, payload: &[u8]| {
            if channel == ticks {
                broadcast.receive(payload);
            } else if channel == seat_changes {
                seat_map.receive(payload);
            }
        };
        let channels = vec![self.queue.ticks_channel(), self.seat_map.channel()];
        if config.outbox_relay_interval_ms > 0 {
            tokio::spawn(crate::events::relay::run(self.clone(), cancel.clone()));
        }
        if config.expiry_sweep_interval_ms > 0 {
            tokio::spawn(crate::events::sweeper::run(self.clone(), cancel.clone()));
        }
        if config.kafka_consumer_enabled {
            let consumer = crate::events::consumer::create(self)?;
            tokio::spawn(crate::events::consumer::run(
                self.clone(),
                consumer,
                cancel.clone(),
            ));
        }
        tokio::spawn(crate::redis_store::listen(
            config.redis_url.clone(),
            channels,
            dispatch,
            cancel.clone(),
        ));
        let presence_period = std::time::Duration::from_millis(
            (config.queue_waiting_grace_seconds * 1000 / 3).max(500),
        );
        tokio::spawn(self.queue_broadcast.clone().run_presence(
            self.queue.clone(),
            presence_period,
            cancel.clone(),
        ));
        Ok(())
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
    /// Cancels the background tasks when the application stops (or is dropped unstarted).
    background: DropGuard,
}

impl Application {
    /// Connects the services, creates the Kafka topics (if the broker answers) and binds the
    /// listener (port 0 picks a free port, as tests do).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let metrics = crate::metrics::install_recorder();
        let listener = TcpListener::bind(config.bind_addr).await?;
        if config.jwt_secret == DEV_JWT_SECRET {
            tracing::warn!(
                "JWT_SECRET is the development default: set it in every real deployment"
            );
        }
        let services = Services::connect(config)?;
        // Kafka is not needed to serve: holds, payments and expiry write the outbox, which waits
        // for the broker, and the relay creates missing topics when it is back. An instance
        // (re)started during a broker outage must still come up.
        if let Err(err) = services.kafka.ensure_topics().await {
            tracing::warn!(error = %err, "Kafka is unreachable at start-up; serving without it until it is back");
        }
        let background = CancellationToken::new();
        services.spawn_background(&background)?;
        let schema = graphql::build_schema(services.clone());
        Ok(Self {
            listener,
            state: AppState {
                services,
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
