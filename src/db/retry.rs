//! Bounded retries of transactions that lost a deadlock or a serialization check (or hit the lock
//! timeout). Such failures are the database protecting consistency: the work is redone a few times
//! at most, and never shown to the client raw (`BUSY` after the last attempt).

use std::time::Duration;

use diesel::result::Error as DieselError;

use crate::error::AppError;
use crate::metrics as m;

pub const ATTEMPTS: u32 = 3;

/// Evaluates `$attempt` (an expression ending in `.await`, giving an `AppResult`) again while
/// PostgreSQL aborted it for a transient reason, at most [`ATTEMPTS`] times, then `BUSY`. For a
/// single statement, which is its own transaction (the hold, the payment).
#[macro_export]
macro_rules! retry_statement {
    ($attempt:expr) => {{
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = $attempt;
            if let Some(settled) = $crate::db::retry::settle(result, attempt).await {
                break settled;
            }
        }
    }};
}

/// Runs the body in a transaction on `$conn`, again when PostgreSQL aborted it for a transient
/// reason. A macro rather than a function: diesel-async's transaction takes an async closure
/// whose `Send`-ness only the call site can see.
#[macro_export]
macro_rules! retry_transaction {
    ($conn:expr, async |$tx:ident| $body:expr) => {
        $crate::retry_statement!(
            diesel_async::AsyncConnection::transaction($conn, async |$tx| $body).await
        )
    };
}

/// `Some(result)` to return it, `None` (after a short jittered pause) to try again.
pub async fn settle<T>(result: Result<T, AppError>, attempt: u32) -> Option<Result<T, AppError>> {
    match result {
        Err(AppError::Internal(cause)) if is_transient(&cause) => {
            metrics::counter!(m::DB_RETRIES_TOTAL).increment(1);
            if attempt >= ATTEMPTS {
                tracing::warn!(error = %cause, "transaction still contended after {ATTEMPTS} attempts");
                return Some(Err(AppError::Busy));
            }
            let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 10);
            tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt) + jitter)).await;
            None
        }
        other => Some(other),
    }
}

fn is_transient(cause: &anyhow::Error) -> bool {
    cause
        .downcast_ref::<DieselError>()
        .is_some_and(crate::db::error::is_transient)
}
