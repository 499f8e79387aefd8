//! What a database error means to us, decided in one place: a transient conflict worth retrying,
//! or the violation of a named constraint the caller turns into a client error.
//!
//! PostgreSQL says what went wrong with a SQLSTATE. diesel 2.3 and diesel-async 0.9 expose it only
//! as a [`DatabaseErrorKind`] for eight states (serialization failure, unique violation, ...);
//! `deadlock_detected` (40P01), `lock_not_available` (55P03) and `query_canceled` (57014) arrive
//! as `Unknown` with the server's message alone (exposing the SQLSTATE is diesel-rs/diesel#5232,
//! still open). Those three are recognised by the message PostgreSQL sends for them, here and
//! nowhere else.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::error::AppError;

/// A database error the caller did not turn into a client error itself: `BUSY` when PostgreSQL
/// could not answer in time, otherwise internal (the cause is logged, never shown).
impl From<DieselError> for AppError {
    fn from(err: DieselError) -> Self {
        if timed_out(&err) {
            tracing::warn!(error = %err, "a statement ran into statement_timeout");
            return Self::Busy;
        }
        if refers_to_missing_user(&err) {
            // A valid access token of a user who does not exist (deleted, or a token minted for
            // another database): whatever the operation was about to write for them.
            return Self::NotFound("user");
        }
        Self::Internal(err.into())
    }
}

/// True when PostgreSQL aborted the transaction for a reason that a retry can get past:
/// serialization failure (40001), deadlock (40P01) or lock timeout (55P03).
pub fn is_transient(err: &DieselError) -> bool {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let message = info.message();
            message.starts_with("deadlock detected")
                || message.starts_with("canceling statement due to lock timeout")
        }
        _ => false,
    }
}

/// True when PostgreSQL cancelled the statement at `statement_timeout` (57014): it could not
/// answer in time. Not retried (that would add load where there is too much already); the
/// client is told `BUSY`.
pub fn timed_out(err: &DieselError) -> bool {
    matches!(
        err,
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
            if info.message().starts_with("canceling statement due to statement timeout")
    )
}

/// True when `err` is a unique violation of the constraint (or unique index) named `name`.
pub fn violates_unique(err: &DieselError, name: &str) -> bool {
    matches!(
        err,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
            if info.constraint_name() == Some(name)
    )
}

/// True when `err` is a foreign-key violation of the constraint named `name` (the row it refers
/// to does not exist).
pub fn violates_foreign_key(err: &DieselError, name: &str) -> bool {
    matches!(
        err,
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info)
            if info.constraint_name() == Some(name)
    )
}

/// True when `err` is a foreign-key violation of a reference to `users`: every such key is
/// `<table>_user_id_fkey` (PostgreSQL's own naming, migration `core`).
fn refers_to_missing_user(err: &DieselError) -> bool {
    matches!(
        err,
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info)
            if info.constraint_name().is_some_and(|name| name.ends_with("_user_id_fkey"))
    )
}

/// The message of an exception one of our own SQL functions raised (`RAISE EXCEPTION 'CODE'`,
/// SQLSTATE P0001, which reaches us as an unknown kind): the function's own word for a refusal.
pub fn raised(err: &DieselError) -> Option<&str> {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => Some(info.message()),
        _ => None,
    }
}
