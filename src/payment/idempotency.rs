//! Idempotency keys: a client-chosen key makes a mutation safe to retry. The key is claimed inside
//! the mutation's own transaction, so a concurrent duplicate waits on the unique index until the
//! first commits, then replays its stored result; a key reused for another request is refused.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::db::schema::idempotency_keys;
use crate::error::{AppError, AppResult};
use crate::ids::UserId;

/// Checks a key supplied by a client.
pub fn validate_key(key: &str) -> AppResult<()> {
    if key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AppError::InvalidInput(
            "an idempotency key is 1 to 128 visible ASCII characters".into(),
        ));
    }
    Ok(())
}

/// The stored result of an earlier request with this key, if any. `request` names the request
/// (operation and arguments): the same key with another request is `IDEMPOTENCY_KEY_REUSED`.
pub async fn replay<T: DeserializeOwned>(
    conn: &mut AsyncPgConnection,
    user: UserId,
    key: &str,
    request: &str,
) -> AppResult<Option<T>> {
    let query = idempotency_keys::table
        .filter(idempotency_keys::user_id.eq(user))
        .filter(idempotency_keys::key.eq(key))
        .select((idempotency_keys::request_hash, idempotency_keys::response));
    let stored: Option<(String, serde_json::Value)> =
        crate::db::one(query, conn).await.optional()?;
    match stored {
        None => Ok(None),
        Some((stored_request, _)) if stored_request != request => {
            Err(AppError::IdempotencyKeyReused)
        }
        Some((_, response)) => Ok(Some(
            serde_json::from_value(response).map_err(AppError::internal)?,
        )),
    }
}

/// Claims the key in the current transaction. `false` when another transaction already claimed
/// it and committed (PostgreSQL made this one wait until then): replay its result instead.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    user: UserId,
    key: &str,
    operation: &str,
    request: &str,
) -> AppResult<bool> {
    let inserted = diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::user_id.eq(user),
            idempotency_keys::key.eq(key),
            idempotency_keys::operation.eq(operation),
            idempotency_keys::request_hash.eq(request),
            idempotency_keys::response.eq(serde_json::Value::Null),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// Stores the result of the request that claimed the key, in the same transaction.
pub async fn store<T: Serialize>(
    conn: &mut AsyncPgConnection,
    user: UserId,
    key: &str,
    response: &T,
) -> AppResult<()> {
    diesel::update(idempotency_keys::table.find((user, key)))
        .set(
            idempotency_keys::response
                .eq(serde_json::to_value(response).map_err(AppError::internal)?),
        )
        .execute(conn)
        .await?;
    Ok(())
}
