//! Building and running one server instance: `main` and the tests both go through
//! [`Application::build`].

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::booking::expiry::consumer::{self, ExpiryHandler};
use crate::booking::expiry::sweeper::Sweeper;
use crate::config::Config;
use crate::db::Database;
use crate::events::relay::Relay;
use crate::graphql;
use crate::http::AppState;
use crate::queue::QueueSettings;
use crate::queue::admitter::Admitter;
use crate::redis_store::RedisStore;
use crate::retention::Retention;

/// Starts the background work of this instance, each with the handles it uses: the queue
/// admitter (unless QUEUE_TICK_MS is 0), the booking-load publisher, the outbox relay, the expiry sweeper and consumer, the retention pass, the
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
    if config.retention_interval_seconds > 0 {
        let retention = Retention::new(background_db.clone(), config);
        tokio::spawn(retention.run(cancel.clone()));
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
        let api = graphql::build_api(app.clone())?;
        Ok(Self {
            listener,
            state: AppState::new(app, api, metrics),
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
        let idle = idle_connection_timeout(self.state.app.queue.settings());
        let router = crate::http::router(self.state);
        serve(self.listener, router, idle, shutdown).await;
        Ok(())
    }
}

/// What a keep-alive connection may stay silent for on top of the longest poll hint.
const IDLE_MARGIN: Duration = Duration::from_secs(15);

/// How long a connection may wait for its next request's headers: the longest poll hint the
/// queue gives, and a margin. hyper runs its `header_read_timeout` between requests too, so this
/// is also the keep-alive idle timeout. At hyper's default (30 s) the server closed the
/// connections of pre-queued fans told to come back at the opening 30 s later, at the moment
/// they sent on them: Go clients (k6) answered `EOF` to 1,383 such requests in one opening run,
/// and every fan reconnected at once.
fn idle_connection_timeout(queue: &QueueSettings) -> Duration {
    queue.longest_poll_hint() + IDLE_MARGIN
}

/// Serves `router` over HTTP/1.1 (keep-alive, websocket upgrades) until `shutdown` completes,
/// then stops accepting and lets every open connection finish its request.
///
/// hyper's HTTP/1 connection, as `axum::serve` would run it minus HTTP/2 detection: an idle
/// keep-alive connection costs about a third less memory, which is what a crowd of fans holding
/// connections open costs the server (docs/performance.md, "Memory per connection"). Nothing we
/// serve speaks cleartext HTTP/2. Headers must arrive within `idle` (see
/// [`idle_connection_timeout`]), so a client trickling them (slowloris) cannot hold a connection
/// forever.
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    idle: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(router.clone());
        let stop = stop.clone();
        connections.spawn(crate::metrics::CONNECTION_TASKS.instrument(async move {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(idle)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                () = stop.cancelled() => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        }));
    }
    drop(listener);
    stop.cancel();
    connections.close();
    connections.wait().await;
}

/// A failed accept: a client that gave up before we accepted it is nothing; anything else (out
/// of file descriptors) is logged and waited out for a second, as `axum::serve` does.
async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn an_idle_connection_outlives_every_poll_hint() {
        for poll_max in [1, 2, 12, 30] {
            let config =
                Config::try_parse_from(["cr", "--queue-poll-max-seconds", &poll_max.to_string()])
                    .expect("parses");
            let queue = QueueSettings::from_config(&config);
            let longest = queue.longest_poll_hint();
            // The pre-queue's hint (a minute at most) and a SOLD_OUT fan's (five times the max).
            assert!(longest >= Duration::from_secs(60), "{longest:?}");
            assert!(longest >= Duration::from_secs(5 * poll_max), "{longest:?}");
            assert!(idle_connection_timeout(&queue) > longest);
        }
    }
}
