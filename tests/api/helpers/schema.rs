//! The GraphQL schema the server serves, for checking documents against it without a server.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::{Response, Schema};
use concert_reservation::graphql::{Mutation, Query, Subscription};

/// The server's schema (its types, fields and arguments: `schema.graphql`), which parses and
/// validates a document but never runs it.
pub struct ValidatingSchema(Schema<Query, Mutation, Subscription>);

impl ValidatingSchema {
    pub fn new() -> Self {
        Self(
            Schema::build(
                Query::default(),
                Mutation::default(),
                Subscription::default(),
            )
            .extension(NeverExecute)
            .finish(),
        )
    }

    /// The schema in SDL, as `schema.graphql` holds it.
    pub fn sdl(&self) -> String {
        self.0.sdl()
    }

    /// The messages of every parse or validation error of `document` (empty when it is valid).
    pub async fn errors(&self, document: &str) -> Vec<String> {
        self.0
            .execute(document)
            .await
            .errors
            .into_iter()
            .map(|error| error.message)
            .collect()
    }
}

/// Ends a request after validation: nothing is resolved, so no resolver needs its data.
struct NeverExecute;

impl ExtensionFactory for NeverExecute {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(NeverExecute)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for NeverExecute {
    async fn execute(
        &self,
        _ctx: &ExtensionContext<'_>,
        _operation_name: Option<&str>,
        _next: NextExecute<'_>,
    ) -> Response {
        Response::default()
    }
}
