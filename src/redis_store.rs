//! Redis: the shared connection pool and the key prefix every key of this deployment carries.

use std::time::Duration;

use bb8_redis::RedisConnectionManager;
use bb8_redis::bb8::{Pool, PooledConnection};

use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::metrics as m;

pub type RedisConn = PooledConnection<'static, RedisConnectionManager>;

/// The Redis pool of one instance, created once and shared.
#[derive(Clone)]
pub struct RedisStore {
    pool: Pool<RedisConnectionManager>,
    prefix: String,
}

impl RedisStore {
    /// Builds the pool without connecting, so the server starts while Redis is down and
    /// recovers by itself when it returns.
    pub fn connect(config: &Config) -> anyhow::Result<Self> {
        let manager = RedisConnectionManager::new(config.redis_url.as_str())?;
        let pool = Pool::builder()
            .max_size(config.redis_pool_size)
            .connection_timeout(Duration::from_secs(2))
            .build_unchecked(manager);
        Ok(Self {
            pool,
            prefix: config.redis_key_prefix.clone(),
        })
    }

    /// A pooled connection, or `UNAVAILABLE` when Redis does not answer.
    pub async fn conn(&self) -> AppResult<RedisConn> {
        self.pool
            .get_owned()
            .await
            .map_err(|err| AppError::Unavailable(anyhow::anyhow!("redis: {err}")))
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
