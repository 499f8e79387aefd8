//! The one error policy: every failure a client can see is an [`AppError`] with a stable
//! `extensions.code`. Internal causes are logged here, once, and replaced by a generic message.

use async_graphql::ErrorExtensions;

/// Stable error codes: the public contract clients and load scripts match on.
pub mod code {
    pub const INVALID_INPUT: &str = "INVALID_INPUT";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    pub const INTERNAL: &str = "INTERNAL";
    /// The HTTP body is not a GraphQL request (bad JSON, wrong content).
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
    pub const BATCH_TOO_LARGE: &str = "BATCH_TOO_LARGE";
    pub const TIMEOUT: &str = "TIMEOUT";
    /// The query text does not parse, or nests fragments too deep for the parser.
    pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
    /// The query does not fit the schema (unknown field, wrong argument type, ...).
    pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
    pub const QUERY_TOO_DEEP: &str = "QUERY_TOO_DEEP";
    /// The query asks for `__schema` or `__type` and this server has introspection turned off.
    pub const INTROSPECTION_DISABLED: &str = "INTROSPECTION_DISABLED";
    pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
    pub const TOO_MANY_DIRECTIVES: &str = "TOO_MANY_DIRECTIVES";
    /// A query sent by hash only that this instance has not seen: send it with its text once.
    pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
    /// Allow-list mode: the operation is not a registered one.
    pub const PERSISTED_QUERY_NOT_ALLOWED: &str = "PERSISTED_QUERY_NOT_ALLOWED";
    /// The query uses more aliases than `GRAPHQL_MAX_ALIASES`.
    pub const TOO_MANY_ALIASES: &str = "TOO_MANY_ALIASES";
    /// An argument value the GraphQL engine itself rejected (out of range, wrong scalar).
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    /// No access token, or one that is expired, forged or for another audience.
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    /// The operation needs a queue token in the `Queue-Token` header and none was sent.
    pub const QUEUE_TOKEN_REQUIRED: &str = "QUEUE_TOKEN_REQUIRED";
    /// The queue token is unknown, or belongs to another user or concert.
    pub const QUEUE_TOKEN_INVALID: &str = "QUEUE_TOKEN_INVALID";
    /// The queue token is still WAITING.
    pub const QUEUE_NOT_ACTIVE: &str = "QUEUE_NOT_ACTIVE";
    /// The queue token has expired (its time ran out, its holder left, or its purchase is done).
    pub const QUEUE_TOKEN_EXPIRED: &str = "QUEUE_TOKEN_EXPIRED";
    /// The queue store cannot be reached; the queue fails closed so nobody skips the line.
    pub const QUEUE_UNAVAILABLE: &str = "QUEUE_UNAVAILABLE";
    /// Some requested seat is taken (or being taken right now): nothing was held.
    pub const SEAT_UNAVAILABLE: &str = "SEAT_UNAVAILABLE";
    /// The caller already has a live hold on this schedule.
    pub const HOLD_ALREADY_EXISTS: &str = "HOLD_ALREADY_EXISTS";
    /// The concert has no seat left to sell right now: no new place in line, no new hold. Seats
    /// may come back (a hold expired or was cancelled); the queue then reopens in order.
    pub const SOLD_OUT: &str = "SOLD_OUT";
    /// The database stayed contended after bounded retries; retrying later may work.
    pub const BUSY: &str = "BUSY";
    /// The hold's time ran out before payment; nothing was charged.
    pub const HOLD_EXPIRED: &str = "HOLD_EXPIRED";
    /// The hold was cancelled; nothing was charged.
    pub const HOLD_CANCELLED: &str = "HOLD_CANCELLED";
    /// The reservation is already paid (with another idempotency key).
    pub const ALREADY_PAID: &str = "ALREADY_PAID";
    /// The balance is lower than the price; nothing was charged.
    pub const INSUFFICIENT_POINTS: &str = "INSUFFICIENT_POINTS";
    /// The reservation belongs to another user.
    pub const NOT_OWNER: &str = "NOT_OWNER";
    /// The idempotency key was already used for a different request.
    pub const IDEMPOTENCY_KEY_REUSED: &str = "IDEMPOTENCY_KEY_REUSED";
    /// The caller is known but may not do this (an organiser operation asked by a fan).
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// The schedule already has another seat map; nothing was changed.
    pub const SEAT_MAP_EXISTS: &str = "SEAT_MAP_EXISTS";
    /// The schedule's sale has started (it opened, or a seat was held or sold): its seat map and
    /// prices are fixed.
    pub const SALE_STARTED: &str = "SALE_STARTED";
    /// The performance's sale has not opened yet (`extensions.opensAt` says when).
    pub const SALE_NOT_OPEN: &str = "SALE_NOT_OPEN";
    /// The performance's sale has closed.
    pub const SALE_CLOSED: &str = "SALE_CLOSED";
    /// A paid booking past the refund deadline before its performance.
    pub const NOT_REFUNDABLE: &str = "NOT_REFUNDABLE";
    /// The hold would give the fan more seats of the performance than MAX_TICKETS_PER_FAN.
    pub const TICKET_LIMIT: &str = "TICKET_LIMIT";
}

/// What went wrong, in terms a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A dependency (database pool, Redis, Kafka) cannot serve right now; retrying later may work.
    #[error("service temporarily unavailable, retry later")]
    Unavailable(#[source] anyhow::Error),
    #[error("the request body is not a GraphQL request: {0}")]
    BadRequest(String),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("a batch may hold at most {0} operations")]
    BatchTooLarge(usize),
    #[error("the request took longer than {0} ms")]
    Timeout(u64),
    /// The answer is late but the mutation runs to its end: the client learns the outcome by
    /// retrying with the same idempotency key (`pay`) or by reading its state (`me`).
    #[error(
        "the request took longer than {0} ms; the mutation may still complete: retry it with the same idempotency key, or read `me`, to learn its outcome"
    )]
    MutationTimeout(u64),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("this operation needs an ACTIVE queue token in the `Queue-Token` header")]
    QueueTokenRequired,
    #[error("the queue token is unknown or not yours")]
    QueueTokenInvalid,
    #[error("the queue token is still waiting; you are at position {position}")]
    QueueNotActive { position: u64 },
    #[error("the queue token has expired; enter the queue again")]
    QueueTokenExpired,
    /// The queue store is down: fail closed, nobody skips the line.
    #[error("the waiting queue is temporarily unavailable, retry in a few seconds")]
    QueueUnavailable(#[source] anyhow::Error),
    #[error("{0}")]
    SeatUnavailable(String),
    #[error("you already hold seats for this schedule; pay for or cancel that hold first")]
    HoldAlreadyExists,
    #[error(
        "this concert is sold out; if a hold runs out or is cancelled the queue reopens in order"
    )]
    SoldOut,
    #[error("the system is busy, retry in a moment")]
    Busy,
    /// Refused before any work because the booking path is at its limit: `BUSY`, with
    /// `extensions.retryAfterMs`.
    #[error("the system is busy, retry in {retry_after_ms} ms")]
    Overloaded { retry_after_ms: u64 },
    #[error("the hold expired before payment; nothing was charged")]
    HoldExpired,
    #[error("the hold was cancelled; nothing was charged")]
    HoldCancelled,
    #[error("this reservation is already paid")]
    AlreadyPaid,
    #[error("not enough points: the price is {price}, the balance {balance}")]
    InsufficientPoints { price: i64, balance: i64 },
    #[error("this reservation belongs to someone else")]
    NotOwner,
    #[error("this idempotency key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("{0}")]
    Forbidden(String),
    #[error("this schedule already has a different seat map ({0} seats); nothing was changed")]
    SeatMapExists(i64),
    #[error("{0}")]
    SaleStarted(String),
    #[error("the sale opens at {opens_at}")]
    SaleNotOpen {
        opens_at: chrono::DateTime<chrono::Utc>,
        /// When fans may enter the queue's pre-queue, if that is what was refused.
        prequeue_opens_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    #[error("the sale of this performance has closed")]
    SaleClosed,
    #[error(
        "this booking can no longer be refunded: refunds end {hours} hours before the performance"
    )]
    NotRefundable { hours: u64 },
    #[error(
        "a fan may have at most {max} seats of a performance, held and bought together; nothing was held"
    )]
    TicketLimit { max: u32 },
    #[error("internal server error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => code::INVALID_INPUT,
            Self::NotFound(_) => code::NOT_FOUND,
            Self::Unavailable(_) => code::UNAVAILABLE,
            Self::BadRequest(_) => code::BAD_REQUEST,
            Self::PayloadTooLarge(_) => code::PAYLOAD_TOO_LARGE,
            Self::BatchTooLarge(_) => code::BATCH_TOO_LARGE,
            Self::Timeout(_) | Self::MutationTimeout(_) => code::TIMEOUT,
            Self::Unauthenticated(_) => code::UNAUTHENTICATED,
            Self::QueueTokenRequired => code::QUEUE_TOKEN_REQUIRED,
            Self::QueueTokenInvalid => code::QUEUE_TOKEN_INVALID,
            Self::QueueNotActive { .. } => code::QUEUE_NOT_ACTIVE,
            Self::QueueTokenExpired => code::QUEUE_TOKEN_EXPIRED,
            Self::QueueUnavailable(_) => code::QUEUE_UNAVAILABLE,
            Self::SeatUnavailable(_) => code::SEAT_UNAVAILABLE,
            Self::HoldAlreadyExists => code::HOLD_ALREADY_EXISTS,
            Self::SoldOut => code::SOLD_OUT,
            Self::Busy | Self::Overloaded { .. } => code::BUSY,
            Self::HoldExpired => code::HOLD_EXPIRED,
            Self::HoldCancelled => code::HOLD_CANCELLED,
            Self::AlreadyPaid => code::ALREADY_PAID,
            Self::InsufficientPoints { .. } => code::INSUFFICIENT_POINTS,
            Self::NotOwner => code::NOT_OWNER,
            Self::IdempotencyKeyReused => code::IDEMPOTENCY_KEY_REUSED,
            Self::Forbidden(_) => code::FORBIDDEN,
            Self::SeatMapExists(_) => code::SEAT_MAP_EXISTS,
            Self::SaleStarted(_) => code::SALE_STARTED,
            Self::SaleNotOpen { .. } => code::SALE_NOT_OPEN,
            Self::SaleClosed => code::SALE_CLOSED,
            Self::NotRefundable { .. } => code::NOT_REFUNDABLE,
            Self::TicketLimit { .. } => code::TICKET_LIMIT,
            Self::Internal(_) => code::INTERNAL,
        }
    }

    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal(cause.into())
    }

    /// Logs the hidden cause of internal and unavailable errors; the client only sees `Display`.
    fn log_cause(&self) {
        match self {
            Self::Internal(cause) => tracing::error!(error = ?cause, "internal error"),
            // Frequent under load: the cause chain, never a backtrace.
            Self::Unavailable(cause) | Self::QueueUnavailable(cause) => {
                tracing::warn!(error = %format_args!("{cause:#}"), "dependency unavailable")
            }
            _ => {}
        }
    }
}

impl From<bb8::RunError<diesel_async::pooled_connection::PoolError>> for AppError {
    fn from(err: bb8::RunError<diesel_async::pooled_connection::PoolError>) -> Self {
        match err {
            bb8::RunError::TimedOut => {
                Self::Unavailable(anyhow::anyhow!("database pool timed out"))
            }
            bb8::RunError::User(err) => Self::Unavailable(err.into()),
        }
    }
}

impl AppError {
    pub(crate) fn to_graphql(&self) -> async_graphql::Error {
        self.log_cause();
        let code = self.code();
        let retry_after_ms = match self {
            Self::Overloaded { retry_after_ms } => Some(*retry_after_ms),
            _ => None,
        };
        let (opens_at, prequeue_opens_at) = match self {
            Self::SaleNotOpen {
                opens_at,
                prequeue_opens_at,
            } => (
                Some(opens_at.to_rfc3339()),
                prequeue_opens_at.map(|at| at.to_rfc3339()),
            ),
            _ => (None, None),
        };
        async_graphql::Error::new(self.to_string()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(ms) = retry_after_ms {
                ext.set("retryAfterMs", ms);
            }
            if let Some(at) = &opens_at {
                ext.set("opensAt", at.as_str());
            }
            if let Some(at) = &prequeue_opens_at {
                ext.set("prequeueOpensAt", at.as_str());
            }
        })
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        err.to_graphql()
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// An error of the GraphQL engine's own steps (parsing, document limits, persisted queries), not
/// of a resolver, with our `extensions.code`.
pub fn engine_error(message: impl Into<String>, code: &str) -> async_graphql::ServerError {
    let mut error = async_graphql::ServerError::new(message, None);
    set_engine_code(&mut error, code);
    error
}

/// Sets the `extensions.code` of an engine error.
pub fn set_engine_code(error: &mut async_graphql::ServerError, code: &str) {
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
}
