//! Parsed documents, remembered by their text: clients send the same few documents over and
//! over, and parsing one (async-graphql's pest parser) cost more server CPU than any other step
//! of a small query (`docs/performance.md`). A remembered document is cloned instead, which is
//! an order of magnitude cheaper. Bounded by the bytes of text it keeps, so a client sending
//! endless distinct documents only evicts older ones.

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, ServerError};

/// Bytes of document text kept (the parsed form is about as large again).
const CAPACITY_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Clone)]
pub(super) struct Documents {
    parsed: moka::sync::Cache<String, ExecutableDocument>,
}

impl Documents {
    pub(super) fn new() -> Self {
        Self {
            parsed: moka::sync::Cache::builder()
                .max_capacity(CAPACITY_BYTES)
                .weigher(|text: &String, _| u32::try_from(text.len()).unwrap_or(u32::MAX))
                .build(),
        }
    }

    /// The request's document: remembered, or parsed now and remembered. (A request may already
    /// carry it, parsed, from its persisted-query hash; it has no text then.)
    pub(super) fn parse<'r>(
        &self,
        request: &'r mut Request,
    ) -> Result<&'r ExecutableDocument, ServerError> {
        if request.query.is_empty() {
            return request.parsed_query();
        }
        match self.parsed.get(&request.query) {
            Some(document) => {
                request.set_parsed_query(document);
                request.parsed_query()
            }
            None => {
                let text = request.query.clone();
                let document = request.parsed_query()?;
                self.parsed.insert(text, document.clone());
                Ok(document)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_is_parsed_once_and_errors_are_not_remembered() {
        let documents = Documents::new();
        let mut first = Request::new("{ concerts { id } }");
        assert!(documents.parse(&mut first).is_ok());
        documents.parsed.run_pending_tasks();
        assert_eq!(documents.parsed.entry_count(), 1);

        let mut again = Request::new("{ concerts { id } }");
        let document = documents.parse(&mut again).expect("remembered");
        assert_eq!(document.operations.iter().count(), 1);

        let mut broken = Request::new("{ concerts {");
        assert!(documents.parse(&mut broken).is_err());
        documents.parsed.run_pending_tasks();
        assert_eq!(documents.parsed.entry_count(), 1);
    }
}
