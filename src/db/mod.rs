//! PostgreSQL access: the bb8 pool of diesel-async connections, per-connection settings,
//! statement counting, and the embedded migrations.

pub mod enums;
pub mod error;
pub mod retry;
pub mod schema;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel_async::pooled_connection::bb8::{Pool, PooledConnection};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolableConnection, RecyclingMethod,
};
use diesel_async::{
    AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, SimpleAsyncConnection,
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures::FutureExt;

use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::metrics as m;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub type DbConn = PooledConnection<'static, AsyncPgConnection>;

/// The future [`one`] returns: the whole answer, loaded, then its first row.
pub type OneRow<'conn, 'query, Q, U> = futures::future::Map<
    diesel_async::return_futures::LoadFuture<'conn, 'query, Q, AsyncPgConnection, U>,
    fn(diesel::QueryResult<Vec<U>>) -> diesel::QueryResult<U>,
>;

/// The one row a statement answers, read to the end of the answer.
///
/// PostgreSQL can send an error after the row: a statement's implicit transaction commits only
/// when the server reads the Sync that follows it, and a `statement_timeout` that fires between
/// the row and that Sync (a stalled server) rolls the statement back. diesel-async's `get_result`
/// and `first` take the first row and drop the rest of the answer unread, so they report such a
/// rolled-back write as done; the `postgres-stall` drill (docs/drills/) saw a hold answered with a
/// reservation that did not exist. This reads to the end, so the error is the answer. No row is
/// `Err(NotFound)`, as with `first`. The architecture test keeps `get_result` and `first` out.
pub fn one<'query, 'conn, Q, U>(
    query: Q,
    conn: &'conn mut AsyncPgConnection,
) -> OneRow<'conn, 'query, Q, U>
where
    Q: diesel_async::methods::LoadQuery<'query, AsyncPgConnection, U> + 'query,
    U: Send,
{
    diesel_async::RunQueryDsl::load(query, conn).map(first_row)
}

fn first_row<U>(rows: diesel::QueryResult<Vec<U>>) -> diesel::QueryResult<U> {
    rows?
        .into_iter()
        .next()
        .ok_or(diesel::result::Error::NotFound)
}

/// The shared connection pool, plus a count of the SQL statements its connections ran.
#[derive(Clone)]
pub struct Database {
    pool: Pool<AsyncPgConnection>,
    max_size: u32,
    statements: Arc<AtomicU64>,
    checkouts: Arc<AtomicU64>,
}

impl Database {
    /// Builds the pool. Connections are opened lazily, so this succeeds while PostgreSQL is down;
    /// `/readyz` tells whether it answers.
    pub fn connect(config: &Config) -> Self {
        Self::connect_sized(config, config.database_pool_size)
    }

    /// A pool of its own of at most `max_size` connections, with the same settings (the
    /// background work's pool).
    pub fn connect_sized(config: &Config, max_size: u32) -> Self {
        let statements = Arc::new(AtomicU64::new(0));
        let settings = format!(
            "SET statement_timeout = {}; SET lock_timeout = {}; SET idle_in_transaction_session_timeout = {};",
            config.database_statement_timeout_ms,
            config.database_lock_timeout_ms,
            // A transaction left open by a crashed task must not keep its row locks.
            config.database_statement_timeout_ms * 2,
        );
        let mut manager_config = ManagerConfig::default();
        let counter = statements.clone();
        manager_config.custom_setup = Box::new(move |url| {
            let settings = settings.clone();
            let counter = counter.clone();
            async move {
                let mut conn = AsyncPgConnection::establish(url).await?;
                conn.batch_execute(&settings)
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                conn.set_instrumentation(StatementCounter(counter));
                Ok(conn)
            }
            .boxed()
        });
        // Checked at checkout without a round trip: a connection whose socket PostgreSQL closed
        // (a restart, a failover, an administrator's pg_terminate_backend) is dropped and
        // another one taken, instead of failing the request that got it. No `SELECT 1` per
        // checkout: that would be a second statement on every hold and payment.
        manager_config.recycling_method =
            RecyclingMethod::CustomFunction(Box::new(|conn: &mut AsyncPgConnection| {
                let open = if conn.is_broken() {
                    Err(diesel::result::Error::BrokenTransactionManager)
                } else {
                    Ok(())
                };
                futures::future::ready(open).boxed()
            }));
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
            &config.database_url,
            manager_config,
        );
        let pool = Pool::builder()
            .max_size(max_size)
            .connection_timeout(config.database_pool_timeout())
            .test_on_check_out(true)
            .build_unchecked(manager);
        Self {
            pool,
            max_size,
            statements,
            checkouts: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A pooled connection; the time spent waiting for it is recorded.
    pub async fn conn(&self) -> AppResult<DbConn> {
        let started = Instant::now();
        self.checkouts.fetch_add(1, Ordering::Relaxed);
        let conn = self.pool.get_owned().await;
        metrics::histogram!(m::DB_POOL_WAIT_SECONDS).record(started.elapsed().as_secs_f64());
        Ok(conn?)
    }

    /// SQL statements run by this pool's connections since start-up.
    pub fn statements_run(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Pool checkouts asked for since start-up (also the count of `db_pool_wait_seconds`).
    pub fn checkouts(&self) -> u64 {
        self.checkouts.load(Ordering::Relaxed)
    }

    /// Pool gauges, refreshed when `/metrics` is scraped.
    pub fn record_pool_metrics(&self) {
        let state = self.pool.state();
        metrics::gauge!(m::DB_POOL_CONNECTIONS).set(f64::from(state.connections));
        metrics::gauge!(m::DB_POOL_IDLE).set(f64::from(state.idle_connections));
        metrics::gauge!(m::DB_POOL_MAX).set(f64::from(self.max_size));
    }

    /// `SELECT 1` through the pool: the readiness check.
    pub async fn ping(&self) -> AppResult<()> {
        let mut conn = self.conn().await?;
        conn.batch_execute("SELECT 1")
            .await
            .map_err(AppError::internal)
    }
}

/// Counts each statement sent to PostgreSQL, for the `db_statements_total` metric and for the
/// test that proves the catalogue runs a constant number of statements.
struct StatementCounter(Arc<AtomicU64>);

impl Instrumentation for StatementCounter {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { .. } = event {
            self.0.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::DB_STATEMENTS_TOTAL).increment(1);
        }
    }
}

/// Runs the pending embedded migrations on `database_url`; returns the versions applied.
pub async fn run_migrations(database_url: &str) -> anyhow::Result<Vec<String>> {
    let conn = AsyncPgConnection::establish(database_url).await?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let applied = tokio::task::spawn_blocking(move || {
        harness
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(|err| anyhow::anyhow!("running migrations failed: {err}"))
    })
    .await??;
    Ok(applied)
}
