//! Redis: the shared connection pool and the key prefix every key of this deployment carries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bb8_redis::RedisConnectionManager;
use bb8_redis::bb8::{self, ManageConnection, Pool, PooledConnection};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::metrics as m;

pub type RedisConn = PooledConnection<'static, RedisManager>;

/// The Redis pool of one instance, created once and shared.
#[derive(Clone)]
pub struct RedisStore {
    pool: Pool<RedisManager>,
    answered: Arc<LastAnswer>,
    prefix: String,
}

/// About how long a client refused because this instance's Redis pool is saturated should wait.
const SATURATED_RETRY_AFTER: Duration = Duration::from_secs(1);

/// bb8-redis's manager, with connections that remember a failure of the link itself. bb8-redis
/// cannot tell a dead connection from a live one without a PING, which would cost a round trip on
/// every checkout; instead a connection whose command failed at the connection level is marked
/// broken and dropped by the pool, so the next checkout reconnects (recovery after a Redis outage).
pub struct RedisManager {
    inner: RedisConnectionManager,
    answered: Arc<LastAnswer>,
}

/// When Redis last answered a command on any connection of the pool: a checkout that times out
/// while Redis answered a moment ago means the pool is saturated, not that Redis is down.
#[derive(Default)]
struct LastAnswer {
    origin: OnceLock<Instant>,
    millis: AtomicU64,
}

impl LastAnswer {
    fn now(&self) -> u64 {
        let origin = self.origin.get_or_init(Instant::now);
        u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn record(&self) {
        self.millis.store(self.now().max(1), Ordering::Relaxed);
    }

    fn within(&self, window: Duration) -> bool {
        let last = self.millis.load(Ordering::Relaxed);
        last > 0
            && self.now().saturating_sub(last) <= u64::try_from(window.as_millis()).unwrap_or(0)
    }
}

/// A multiplexed connection plus whether its link has failed.
pub struct TrackedConnection {
    inner: MultiplexedConnection,
    broken: bool,
    answered: Arc<LastAnswer>,
}

impl TrackedConnection {
    fn observe<T>(&mut self, result: &Result<T, RedisError>) {
        if result.is_ok() {
            self.answered.record();
        }
        if let Err(err) = result
            && (err.is_io_error()
                || err.is_connection_dropped()
                || err.is_unrecoverable_error()
                || err.is_timeout())
        {
            self.broken = true;
        }
    }
}

impl ConnectionLike for TrackedConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = self.inner.req_packed_command(cmd).await;
            self.observe(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = self.inner.req_packed_commands(cmd, offset, count).await;
            self.observe(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

impl ManageConnection for RedisManager {
    type Connection = TrackedConnection;
    type Error = RedisError;

    async fn connect(&self) -> Result<TrackedConnection, RedisError> {
        Ok(TrackedConnection {
            inner: self.inner.connect().await?,
            broken: false,
            answered: self.answered.clone(),
        })
    }

    async fn is_valid(&self, conn: &mut TrackedConnection) -> Result<(), RedisError> {
        self.inner.is_valid(&mut conn.inner).await
    }

    fn has_broken(&self, conn: &mut TrackedConnection) -> bool {
        conn.broken
    }
}

impl RedisStore {
    /// Builds the pool without connecting, so the server starts while Redis is down and
    /// recovers by itself when it returns.
    pub fn connect(config: &Config) -> anyhow::Result<Self> {
        Self::connect_sized(config, config.redis_pool_size)
    }

    /// A separate pool of `max_size` connections, for background work that must not queue
    /// behind requests.
    pub fn connect_sized(config: &Config, max_size: u32) -> anyhow::Result<Self> {
        let answered = Arc::new(LastAnswer::default());
        let manager = RedisManager {
            inner: RedisConnectionManager::new(config.redis_url.as_str())?,
            answered: answered.clone(),
        };
        let pool = bb8::Pool::builder()
            .max_size(max_size)
            .connection_timeout(Duration::from_secs(1))
            .test_on_check_out(false)
            .build_unchecked(manager);
        Ok(Self {
            pool,
            answered,
            prefix: config.redis_key_prefix.clone(),
        })
    }

    /// A pooled connection; `UNAVAILABLE` when Redis does not answer, but `BUSY` with a retry
    /// hint when the checkout timed out while Redis answered other commands a moment ago: then
    /// Redis is fine and this instance is saturated (a burst of fans), and the honest answer is
    /// "come back in a moment".
    pub async fn conn(&self) -> AppResult<RedisConn> {
        self.pool.get_owned().await.map_err(|err| {
            if self.answered.within(Duration::from_secs(2)) {
                metrics::counter!(m::POOL_SATURATED_REFUSALS_TOTAL, "pool" => "redis").increment(1);
                AppError::Overloaded {
                    retry_after_ms: crate::limit::jittered(SATURATED_RETRY_AFTER),
                }
            } else {
                AppError::Unavailable(anyhow::anyhow!("redis: {err}"))
            }
        })
    }

    /// The full key for `name` under this deployment's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `PING`: the readiness check.
    pub async fn ping(&self) -> AppResult<()> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING")
            .query_async(&mut *conn)
            .await
            .map_err(|err| AppError::Unavailable(err.into()))?;
        Ok(())
    }

    /// Pool gauges, refreshed when `/metrics` is scraped.
    pub fn record_pool_metrics(&self) {
        let state = self.pool.state();
        metrics::gauge!(m::REDIS_POOL_CONNECTIONS).set(f64::from(state.connections));
        metrics::gauge!(m::REDIS_POOL_IDLE).set(f64::from(state.idle_connections));
    }
}
