//! The waiting queue (Redis): fans enter per concert and get a token bound to them; tokens wait in
//! strict FIFO order (a Redis sequence), are admitted to ACTIVE at a controlled rate up to a cap by
//! a single leased admitter per concert, and expire. Every multi-key change is one Lua script.
//!
//! Positions are exact and cheap: admission always takes the lowest sequence numbers, so with
//! `head` the highest sequence admitted and `gone` the sequences that left the line early, a
//! WAITING token's position is `seq - head - |gone in (head, seq)|`. The admitter broadcasts
//! `head` and `gone` once per tick; subscribers compute their own position from that.
//!
//! Before a concert's scheduled opening fans enter its pre-queue (PREQUEUE, no place yet); at the
//! opening the admitter shuffles them into the line once ([`opening`]).
//!
//! A concert with no seat left to sell is sold out ([`crate::catalogue::Concert::with_free_seats`]):
//! the admitter stops admitting, WAITING fans read `SOLD_OUT` (and keep their place), new fans
//! cannot enter, and holds are refused before they reach the database. When a seat comes back
//! the queue reopens in the same order.

pub mod admission;
pub mod admitter;
pub mod broadcast;
pub mod opening;
pub mod pressure;
pub mod settings;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use redis::Script;

use crate::auth::Viewer;
use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::ids::{ConcertId, UserId};
use crate::limit::LobbyLimit;
use crate::metrics as m;
use crate::redis_store::{RedisConn, RedisStore};

/// Where a token is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
#[graphql(name = "QueueTokenStatus")]
pub enum QueueState {
    /// Entered before the sale's opening: no place yet. At the opening everyone in the pre-queue
    /// is shuffled into the line, uniformly at random, then becomes WAITING.
    Prequeue,
    Waiting,
    Active,
    Expired,
    /// Still in line, but the concert has no seat left to sell; back to WAITING, in the same
    /// place, if seats come back.
    SoldOut,
}

/// One token's place in line, as polled or pushed to its holder.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStatus {
    pub token: String,
    pub concert_id: ConcertId,
    pub state: QueueState,
    /// 1-based place among WAITING tokens (None unless WAITING).
    pub position: Option<u64>,
    /// Estimated seconds until ACTIVE, from the observed admission rate.
    pub estimated_wait_seconds: Option<u64>,
    /// When an ACTIVE token stops being valid.
    pub active_until: Option<DateTime<Utc>>,
    /// When a polling client should ask again (None: no need to, ACTIVE or EXPIRED).
    pub poll_after_seconds: Option<u64>,
    /// The concert has no seat left to sell right now (an ACTIVE fan may still pay for a hold).
    pub sold_out: bool,
    /// When the sale opens, for a PREQUEUE token.
    pub opens_at: Option<DateTime<Utc>>,
}

/// The longest a PREQUEUE fan is told to wait before asking again.
const PREQUEUE_POLL_MAX_SECONDS: u64 = 60;

/// A token's identity: `<concert id>.<random uuid>`. The concert is readable from the token so a
/// status lookup needs nothing else; the uuid makes tokens unguessable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueueToken {
    pub concert_id: ConcertId,
    value: String,
}

impl QueueToken {
    fn new(concert_id: ConcertId) -> Self {
        Self {
            concert_id,
            value: format!("{concert_id}.{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// Parses a token a client sent; a malformed one is as unknown as a forged one.
    pub fn parse(value: &str) -> AppResult<Self> {
        let (concert, rest) = value.split_once('.').ok_or(AppError::QueueTokenInvalid)?;
        let concert_id = concert
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or(AppError::QueueTokenInvalid)?;
        if rest.len() != 32 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AppError::QueueTokenInvalid);
        }
        Ok(Self {
            concert_id: ConcertId(concert_id),
            value: value.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }
}

/// Queue tuning, read once from the configuration. The admission rate, cap and active TTL are
/// the defaults of concerts without [`settings`] of their own.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub admit_per_second: f64,
    pub active_cap: u32,
    pub active_ttl_ms: u64,
    /// 0: an ACTIVE fan keeps the slot for the whole active TTL.
    pub active_idle_ms: u64,
    pub waiting_grace_ms: u64,
    pub tick_ms: u64,
    pub record_ttl_seconds: u64,
    pub poll_max_seconds: u64,
    pub adaptive: bool,
    /// At most this many `enter`/`status` calls at once in this instance (see [`LobbyLimit`]).
    pub concurrency: usize,
    pub busy_retry_after_ms: u64,
}

impl QueueSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            admit_per_second: config.queue_admit_per_second,
            active_cap: config.queue_active_cap,
            active_ttl_ms: config.queue_active_ttl_seconds * 1000,
            active_idle_ms: config.queue_active_idle_seconds * 1000,
            waiting_grace_ms: config.queue_waiting_grace_seconds * 1000,
            tick_ms: config.queue_tick_ms,
            record_ttl_seconds: config.queue_token_ttl_seconds,
            poll_max_seconds: config.queue_poll_max_seconds.max(1),
            adaptive: config.queue_adaptive,
            concurrency: config.queue_slots(),
            busy_retry_after_ms: config.queue_busy_retry_after_ms,
        }
    }

    /// The longest `pollAfterSeconds` any status can carry: a PREQUEUE fan's (at most a minute)
    /// or a SOLD_OUT fan's (five times the WAITING maximum). A client that follows the hint is
    /// silent for at most this long, so its keep-alive connection must outlive it.
    pub fn longest_poll_hint(&self) -> Duration {
        Duration::from_secs(PREQUEUE_POLL_MAX_SECONDS.max(self.sold_out_poll_seconds()))
    }

    fn sold_out_poll_seconds(&self) -> u64 {
        self.poll_max_seconds.saturating_mul(5)
    }
}

struct Scripts {
    enter: Script,
    status: Script,
    tick: Script,
    lease: Script,
    finish: Script,
    idle: Script,
    prequeue: Script,
    open: Script,
}

/// The queue service, shared by resolvers, the admitter and the subscription fan-out.
#[derive(Clone)]
pub struct Queue {
    redis: RedisStore,
    settings: Arc<QueueSettings>,
    scripts: Arc<Scripts>,
    lobby: LobbyLimit,
}

/// The Redis keys of one concert's queue. The `{id}` hash tag keeps them in one cluster slot.
pub(crate) struct Keys {
    base: String,
}

impl Keys {
    pub(crate) fn new(redis: &RedisStore, concert: ConcertId) -> Self {
        Self {
            base: redis.key(&format!("q:{{{concert}}}:")),
        }
    }
    fn named(&self, name: &str) -> String {
        format!("{}{name}", self.base)
    }
    fn token_prefix(&self) -> String {
        self.named("tok:")
    }
    fn token(&self, token: &QueueToken) -> String {
        format!("{}{}", self.token_prefix(), token.as_str())
    }
    fn user_prefix(&self) -> String {
        self.named("user:")
    }
    fn user(&self, user: UserId) -> String {
        format!("{}{user}", self.user_prefix())
    }
}

/// What status.lua (and enter.lua, after the token) answer:
/// (status, user, seq, head, gone ahead, active until ms, smoothed rate, sold out, opening ms).
type StatusReply = (String, i64, u64, u64, u64, i64, String, u8, i64);
/// What enter.lua answers: the token, then a [`StatusReply`].
type EnterReply = (String, String, i64, u64, u64, u64, i64, String, u8, i64);

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// A Redis failure: the store being unreachable, or reachable but not serving yet (loading its
/// append-only file after a restart, a failover in progress), is `QUEUE_UNAVAILABLE` (fail
/// closed); anything else (a script or type error) is a bug. The redis-restart drill saw the
/// `LOADING` answers of a restarting Redis reach fans as INTERNAL.
pub(crate) fn unavailable(err: redis::RedisError) -> AppError {
    use redis::{ErrorKind, ServerErrorKind};
    let not_serving = matches!(
        err.kind(),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::ReadOnly
        )
    );
    if not_serving
        || err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
    {
        AppError::QueueUnavailable(err.into())
    } else {
        AppError::internal(err)
    }
}

impl Queue {
    pub fn new(redis: RedisStore, settings: QueueSettings) -> Self {
        let scripts = Scripts {
            enter: Script::new(include_str!("lua/enter.lua")),
            status: Script::new(include_str!("lua/status.lua")),
            tick: Script::new(include_str!("lua/tick.lua")),
            lease: Script::new(include_str!("lua/lease.lua")),
            finish: Script::new(include_str!("lua/finish.lua")),
            idle: Script::new(include_str!("lua/idle.lua")),
            prequeue: Script::new(include_str!("lua/prequeue.lua")),
            open: Script::new(include_str!("lua/open.lua")),
        };
        let lobby = LobbyLimit::new(
            settings.concurrency,
            Duration::from_millis(settings.busy_retry_after_ms),
        );
        Self {
            redis,
            settings: Arc::new(settings),
            scripts: Arc::new(scripts),
            lobby,
        }
    }

    /// The same queue over another Redis pool (the admitter uses its own, so request load
    /// cannot starve admission ticks).
    pub fn with_store(&self, redis: RedisStore) -> Self {
        Self {
            redis,
            ..self.clone()
        }
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    pub(crate) async fn conn(&self) -> AppResult<RedisConn> {
        self.redis.conn().await.map_err(|err| match err {
            AppError::Unavailable(cause) => AppError::QueueUnavailable(cause),
            other => other,
        })
    }

    pub(crate) fn concerts_key(&self) -> String {
        self.redis.key("q:concerts")
    }

    /// The pub/sub channel admission ticks are broadcast on.
    pub fn ticks_channel(&self) -> String {
        self.redis.key("q:ticks")
    }

    /// Enters `viewer` into `concert`'s queue, or returns the token they already hold there.
    /// Before `opens_at` (the sale's opening, None when it is open) the token is PREQUEUE.
    /// `SOLD_OUT` for a fan without a token when the concert has no seat left.
    /// `BUSY` at once when the waiting room is serving all it can (see [`LobbyLimit`]).
    pub async fn enter(
        &self,
        viewer: Viewer,
        concert: ConcertId,
        opens_at: Option<DateTime<Utc>>,
    ) -> AppResult<QueueStatus> {
        let _slot = self.lobby.enter()?;
        let keys = Keys::new(&self.redis, concert);
        let candidate = QueueToken::new(concert);
        let mut conn = self.conn().await?;
        let (token, state, user, seq, head, gone_ahead, active_until_ms, rate, sold_out, opens_ms): EnterReply = self
            .scripts
            .enter
            .key(keys.user(viewer.user_id))
            .key(keys.named("seq"))
            .key(keys.named("waiting"))
            .key(keys.named("seen"))
            .key(self.concerts_key())
            .key(keys.named("meta"))
            .key(keys.named("gone"))
            .key(keys.named("pre"))
            .key(keys.named("late"))
            .key(keys.named("arrivals"))
            .arg(candidate.as_str())
            .arg(keys.token_prefix())
            .arg(viewer.user_id.0)
            .arg(now_ms())
            .arg(self.settings.record_ttl_seconds)
            .arg(concert.0)
            .arg(opens_at.map_or(0, |at| at.timestamp_millis()))
            .invoke_async(&mut *conn)
            .await
            .map_err(unavailable)?;
        if token.is_empty() {
            return Err(AppError::SoldOut);
        }
        if token == candidate.as_str() {
            metrics::counter!(m::QUEUE_ENTRIES_TOTAL, "concert" => concert.to_string())
                .increment(1);
        }
        let token = QueueToken::parse(&token)?;
        Ok(self
            .interpret(
                &token,
                (
                    state,
                    user,
                    seq,
                    head,
                    gone_ahead,
                    active_until_ms,
                    rate,
                    sold_out,
                    opens_ms,
                ),
            )
            .1)
    }

    /// The status of `token`, which must be the viewer's. Also keeps a WAITING token alive.
    /// `BUSY` at once when the waiting room is serving all it can.
    pub async fn status(&self, viewer: Viewer, token: &str) -> AppResult<QueueStatus> {
        let _slot = self.lobby.enter()?;
        self.owned_status(viewer, &QueueToken::parse(token)?).await
    }

    /// The status of a token that must be the viewer's: unknown and foreign tokens look alike.
    async fn owned_status(&self, viewer: Viewer, token: &QueueToken) -> AppResult<QueueStatus> {
        let (owner, status) = self.read(token).await?.ok_or(AppError::QueueTokenInvalid)?;
        if owner != viewer.user_id {
            return Err(AppError::QueueTokenInvalid);
        }
        Ok(status)
    }

    /// Reads a token's record and place: `None` when Redis does not know it (never issued, or
    /// forgotten after QUEUE_TOKEN_TTL_SECONDS).
    async fn read(&self, token: &QueueToken) -> AppResult<Option<(UserId, QueueStatus)>> {
        let keys = Keys::new(&self.redis, token.concert_id);
        let mut conn = self.conn().await?;
        let reply: Option<StatusReply> = self
            .scripts
            .status
            .key(keys.token(token))
            .key(keys.named("meta"))
            .key(keys.named("gone"))
            .key(keys.named("seen"))
            .arg(token.as_str())
            .arg(now_ms())
            .invoke_async(&mut *conn)
            .await
            .map_err(unavailable)?;
        Ok(reply.map(|reply| self.interpret(token, reply)))
    }

    /// Turns the record a script read into the owner and the status the fan sees.
    fn interpret(&self, token: &QueueToken, reply: StatusReply) -> (UserId, QueueStatus) {
        let (state, user, seq, head, gone_ahead, active_until_ms, rate, sold_out, opens_ms) = reply;
        let sold_out = sold_out == 1;
        let position = seq.saturating_sub(head).saturating_sub(gone_ahead);
        let status = match state.as_str() {
            "PREQUEUE" => self.prequeue_status(token, Utc.timestamp_millis_opt(opens_ms).single()),
            "WAITING" if sold_out => self.sold_out_status(token, position),
            "WAITING" => self.waiting_status(token, position, rate.parse().unwrap_or(0.0)),
            "ACTIVE" if active_until_ms > now_ms() => QueueStatus {
                active_until: Utc.timestamp_millis_opt(active_until_ms).single(),
                sold_out,
                ..self.bare_status(token, QueueState::Active)
            },
            _ => self.bare_status(token, QueueState::Expired),
        };
        (UserId(user), status)
    }

    fn bare_status(&self, token: &QueueToken, state: QueueState) -> QueueStatus {
        QueueStatus {
            token: token.as_str().to_owned(),
            concert_id: token.concert_id,
            state,
            position: None,
            estimated_wait_seconds: None,
            active_until: None,
            poll_after_seconds: None,
            sold_out: false,
            opens_at: None,
        }
    }

    /// A PREQUEUE status: no place until the opening (`opens_at`, None once it has passed and
    /// the shuffle is a tick away). Ask again at the opening, at most a minute from now: nobody
    /// is dropped from the pre-queue for silence and every place is drawn at the opening, so
    /// polling sooner gains nothing and only loads the waiting room.
    pub fn prequeue_status(
        &self,
        token: &QueueToken,
        opens_at: Option<DateTime<Utc>>,
    ) -> QueueStatus {
        let opens_at = opens_at.filter(|at| at.timestamp_millis() > 0);
        let until_opening = opens_at.map_or(0, |at| (at - Utc::now()).num_seconds().max(0) as u64);
        QueueStatus {
            poll_after_seconds: Some(until_opening.clamp(1, PREQUEUE_POLL_MAX_SECONDS)),
            opens_at,
            ..self.bare_status(token, QueueState::Prequeue)
        }
    }

    /// A WAITING status at `position`, with an ETA from the observed admission rate (the
    /// configured rate until one has been observed). The poll hint is 1 s for a fan who should be
    /// admitted within about 10 s, QUEUE_POLL_MAX_SECONDS further back.
    pub fn waiting_status(
        &self,
        token: &QueueToken,
        position: u64,
        observed_rate: f64,
    ) -> QueueStatus {
        let position = position.max(1);
        let rate = if observed_rate > 0.0 {
            observed_rate
        } else {
            self.settings.admit_per_second
        };
        let eta = (rate > 0.0).then(|| (position as f64 / rate).ceil() as u64);
        let poll_after = match eta {
            Some(seconds) if seconds <= 10 => 1,
            _ => self.settings.poll_max_seconds,
        };
        QueueStatus {
            position: Some(position),
            estimated_wait_seconds: eta,
            poll_after_seconds: Some(poll_after),
            ..self.bare_status(token, QueueState::Waiting)
        }
    }

    /// A SOLD_OUT status: the fan keeps `position` for when seats come back, and is told to poll
    /// five times less often than the furthest WAITING fan.
    pub fn sold_out_status(&self, token: &QueueToken, position: u64) -> QueueStatus {
        QueueStatus {
            position: Some(position.max(1)),
            poll_after_seconds: Some(self.settings.sold_out_poll_seconds()),
            sold_out: true,
            ..self.bare_status(token, QueueState::SoldOut)
        }
    }

    /// The guard of payments: `token` must be ACTIVE and the viewer's; returns the concert it
    /// admits to (the caller checks that what it pays for belongs to that concert).
    pub async fn require_active_token(
        &self,
        viewer: Viewer,
        token: Option<&str>,
    ) -> AppResult<ConcertId> {
        let concert = QueueToken::parse(token.ok_or(AppError::QueueTokenRequired)?)?.concert_id;
        self.require_active(viewer, concert, token).await?;
        Ok(concert)
    }

    /// The guard of holds and payments: `token` must be ACTIVE, the viewer's, for `concert`.
    /// Returns its status (which says whether the concert is sold out).
    pub async fn require_active(
        &self,
        viewer: Viewer,
        concert: ConcertId,
        token: Option<&str>,
    ) -> AppResult<QueueStatus> {
        let token = QueueToken::parse(token.ok_or(AppError::QueueTokenRequired)?)?;
        if token.concert_id != concert {
            return Err(AppError::QueueTokenInvalid);
        }
        let status = self.owned_status(viewer, &token).await?;
        match status.state {
            QueueState::Active => Ok(status),
            QueueState::Waiting | QueueState::Prequeue => Err(AppError::QueueNotActive {
                position: status.position.unwrap_or(0),
            }),
            QueueState::SoldOut => Err(AppError::SoldOut),
            QueueState::Expired => Err(AppError::QueueTokenExpired),
        }
    }

    /// Ends a token now (purchase done, hold lost, or the fan left), freeing its place or slot.
    /// Returns false when it had already ended.
    pub async fn finish(&self, token: &str) -> AppResult<bool> {
        let token = QueueToken::parse(token)?;
        let keys = Keys::new(&self.redis, token.concert_id);
        let mut conn = self.conn().await?;
        let ended: i64 = self
            .scripts
            .finish
            .key(keys.token(&token))
            .key(keys.named("active"))
            .key(keys.named("waiting"))
            .key(keys.named("seen"))
            .key(keys.named("gone"))
            .key(keys.user_prefix())
            .key(keys.named("idle"))
            .key(keys.named("pre"))
            .key(keys.named("late"))
            .arg(token.as_str())
            .arg(self.settings.record_ttl_seconds)
            .invoke_async(&mut *conn)
            .await
            .map_err(unavailable)?;
        Ok(ended == 1)
    }

    /// Ends `user`'s token in `concert`'s queue, if they hold one (their hold was lost).
    pub async fn finish_for(&self, concert: ConcertId, user: UserId) -> AppResult<bool> {
        let keys = Keys::new(&self.redis, concert);
        let token: Option<String> = {
            let mut conn = self.conn().await?;
            redis::cmd("GET")
                .arg(keys.user(user))
                .query_async(&mut *conn)
                .await
                .map_err(unavailable)?
        };
        match token {
            Some(token) => self.finish(&token).await,
            None => Ok(false),
        }
    }

    /// `user` holds seats of `concert` until `hold_ends`: their ACTIVE slot stays theirs until
    /// then, plus the idle time.
    pub async fn holding(
        &self,
        concert: ConcertId,
        user: UserId,
        hold_ends: DateTime<Utc>,
    ) -> AppResult<()> {
        let deadline = hold_ends.timestamp_millis() + self.idle_ms();
        self.move_idle_deadline(concert, user, deadline, "later")
            .await
    }

    /// `user` gave their hold up: they keep their ACTIVE slot for the idle time from now.
    pub async fn released(&self, concert: ConcertId, user: UserId) -> AppResult<()> {
        let deadline = now_ms() + self.idle_ms();
        self.move_idle_deadline(concert, user, deadline, "set")
            .await
    }

    fn idle_ms(&self) -> i64 {
        i64::try_from(self.settings.active_idle_ms).unwrap_or(i64::MAX / 2)
    }

    async fn move_idle_deadline(
        &self,
        concert: ConcertId,
        user: UserId,
        deadline_ms: i64,
        mode: &str,
    ) -> AppResult<()> {
        if self.settings.active_idle_ms == 0 {
            return Ok(());
        }
        let keys = Keys::new(&self.redis, concert);
        let mut conn = self.conn().await?;
        let _: i64 = self
            .scripts
            .idle
            .key(keys.user(user))
            .key(keys.named("active"))
            .key(keys.named("idle"))
            .arg(deadline_ms)
            .arg(mode)
            .invoke_async(&mut *conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The token's sequence number, which subscribers compute their position from.
    pub async fn sequence(&self, token: &QueueToken) -> AppResult<Option<u64>> {
        let keys = Keys::new(&self.redis, token.concert_id);
        let mut conn = self.conn().await?;
        redis::cmd("HGET")
            .arg(keys.token(token))
            .arg("seq")
            .query_async(&mut *conn)
            .await
            .map_err(unavailable)
    }

    /// Marks WAITING tokens as seen now (subscribers are alive), one command per concert.
    pub async fn touch(&self, concert: ConcertId, tokens: &[String]) -> AppResult<()> {
        if tokens.is_empty() {
            return Ok(());
        }
        let keys = Keys::new(&self.redis, concert);
        let now = now_ms();
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(keys.named("seen")).arg("XX");
        for token in tokens {
            cmd.arg(now).arg(token);
        }
        let mut conn = self.conn().await?;
        let _: i64 = cmd.query_async(&mut *conn).await.map_err(unavailable)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::unavailable;
    use redis::{ErrorKind, RedisError, ServerErrorKind};

    fn server_error(kind: ServerErrorKind) -> RedisError {
        RedisError::from((ErrorKind::Server(kind), "an answer of the server"))
    }

    #[test]
    fn a_redis_not_serving_yet_is_unavailable_and_a_script_error_a_bug() {
        for kind in [
            ServerErrorKind::BusyLoading,
            ServerErrorKind::TryAgain,
            ServerErrorKind::MasterDown,
        ] {
            assert_eq!(
                unavailable(server_error(kind)).code(),
                "QUEUE_UNAVAILABLE",
                "{kind:?}"
            );
        }
        let refused = RedisError::from((ErrorKind::Io, "connection refused"));
        assert_eq!(unavailable(refused).code(), "QUEUE_UNAVAILABLE");
        for kind in [ServerErrorKind::ResponseError, ServerErrorKind::NoScript] {
            assert_eq!(
                unavailable(server_error(kind)).code(),
                "INTERNAL",
                "{kind:?}"
            );
        }
    }
}
