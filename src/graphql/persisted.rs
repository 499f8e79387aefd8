//! Persisted queries: a client may send the SHA-256 of a query instead of its text.
//!
//! - **Automatic persisted queries** (the Apollo convention; async-graphql's LRU storage): a request
//!   with `extensions.persistedQuery = {version: 1, sha256Hash}` and no `query` runs the query this
//!   instance saw with that hash; if it has not seen it, the answer is `PERSISTED_QUERY_NOT_FOUND`
//!   (message `PersistedQueryNotFound`, as Apollo clients expect) and the client sends the text
//!   with the hash once. Each instance remembers the last `PERSISTED_QUERY_CACHE` queries, parsed,
//!   so a known hash is not parsed again.
//! - **Allow-list mode** (`GRAPHQL_ALLOWED_OPERATIONS`, a JSON file `{"<sha256 hex>": "<query>"}`):
//!   only the registered operations run, sent by hash or as text; anything else is refused with
//!   `PERSISTED_QUERY_NOT_ALLOWED` before it is parsed.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::apollo_persisted_queries::{CacheStorage, LruCacheStorage};
use async_graphql::{Request, ServerResult};
use sha2::{Digest, Sha256};

use crate::error::{code, engine_error};

/// How this instance treats a request's `extensions.persistedQuery`.
#[derive(Clone)]
pub enum Persisted {
    /// Automatic persisted queries, remembered per instance.
    Automatic(LruCacheStorage),
    /// Registered operations only.
    AllowList(AllowList),
}

impl Persisted {
    /// Automatic persisted queries remembering the last `capacity` documents.
    pub fn automatic(capacity: usize) -> Self {
        Self::Automatic(LruCacheStorage::new(capacity.max(1)))
    }

    /// The request with its document: the text it carries, or the one its hash stands for.
    pub async fn resolve(&self, request: Request) -> ServerResult<Request> {
        match self {
            Self::Automatic(storage) => automatic(storage, request).await,
            Self::AllowList(list) => list.resolve(request),
        }
    }
}

/// Apollo's protocol: a hash alone runs the document remembered for it, or asks for its text
/// (`PersistedQueryNotFound`); a hash with its text is remembered.
async fn automatic(storage: &LruCacheStorage, mut request: Request) -> ServerResult<Request> {
    let Some(value) = request.extensions.remove("persistedQuery") else {
        return Ok(request);
    };
    let hash = persisted_hash(value)?;
    if request.query.is_empty() {
        let Some(document) = storage.get(hash).await else {
            // Apollo clients recognise this exact message and resend the query with its hash.
            return Err(engine_error(
                "PersistedQueryNotFound",
                code::PERSISTED_QUERY_NOT_FOUND,
            ));
        };
        request.set_parsed_query(document);
        return Ok(request);
    }
    if sha256_hex(&request.query) != hash {
        return Err(engine_error(
            "the persisted query's sha256Hash is not the SHA-256 of its query",
            code::BAD_REQUEST,
        ));
    }
    let document = request
        .parsed_query()
        .map_err(super::observe::parse_error)?;
    storage.set(hash, document.clone()).await;
    Ok(request)
}

/// The registered operations of allow-list mode, by the hex SHA-256 of their text.
#[derive(Clone, Default)]
pub struct AllowList {
    by_hash: Arc<HashMap<String, String>>,
}

impl AllowList {
    /// Reads `{"<sha256 hex>": "<query>"}` from `path`; every hash must be its query's.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", path.display()))?;
        let entries: HashMap<String, String> = serde_json::from_str(&text).map_err(|err| {
            anyhow::anyhow!(
                "{} is not a JSON object of sha256 hash -> query: {err}",
                path.display()
            )
        })?;
        Self::new(entries)
    }

    /// The allow-list of these `hash -> query` entries; a hash that is not its query's is refused.
    pub fn new(entries: HashMap<String, String>) -> anyhow::Result<Self> {
        for (hash, query) in &entries {
            anyhow::ensure!(
                *hash == sha256_hex(query),
                "the hash {hash} is not the SHA-256 of its query"
            );
        }
        Ok(Self {
            by_hash: Arc::new(entries),
        })
    }

    fn query(&self, hash: &str) -> Option<&String> {
        self.by_hash.get(hash)
    }
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl AllowList {
    /// Only a registered operation passes, sent by its hash or as its text.
    fn resolve(&self, mut request: Request) -> ServerResult<Request> {
        let hash = match request.extensions.remove("persistedQuery") {
            Some(value) => Some(persisted_hash(value)?),
            None => None,
        };
        let hash = hash.unwrap_or_else(|| sha256_hex(&request.query));
        let Some(query) = self.query(&hash) else {
            return Err(engine_error(
                "this server runs registered operations only, and this is not one of them",
                code::PERSISTED_QUERY_NOT_ALLOWED,
            ));
        };
        if !request.query.is_empty() && request.query != *query {
            return Err(engine_error(
                "the query's text is not the one registered under its hash",
                code::PERSISTED_QUERY_NOT_ALLOWED,
            ));
        }
        request.query = query.clone();
        Ok(request)
    }
}

/// The `sha256Hash` of a `persistedQuery` extension of version 1.
fn persisted_hash(value: async_graphql::Value) -> ServerResult<String> {
    #[derive(serde::Deserialize)]
    struct Persisted {
        version: i32,
        #[serde(rename = "sha256Hash")]
        sha256_hash: String,
    }
    match async_graphql::from_value::<Persisted>(value) {
        Ok(persisted) if persisted.version == 1 => Ok(persisted.sha256_hash.to_ascii_lowercase()),
        _ => Err(engine_error(
            "`extensions.persistedQuery` must be {\"version\": 1, \"sha256Hash\": \"<hex>\"}",
            code::BAD_REQUEST,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_lowercase_hex_sha256() {
        assert_eq!(
            sha256_hex("{ __typename }"),
            "7f56e67dd21ab3f30d1ff8b7bed08893f0a0db86449836189b361dd1e56ddb4b"
        );
    }

    #[test]
    fn an_allow_list_refuses_a_hash_that_is_not_its_query() {
        let query = "{ concerts { id } }".to_owned();
        let good = HashMap::from([(sha256_hex(&query), query.clone())]);
        assert!(AllowList::new(good).is_ok());
        let bad = HashMap::from([("00".repeat(32), query)]);
        assert!(AllowList::new(bad).is_err());
    }
}
