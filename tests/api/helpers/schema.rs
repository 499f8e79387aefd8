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
    /// Its variables get placeholder values of their types: a list field's cost is computed from
    /// its `limit` argument during validation, so a variable it names must have a value.
    pub async fn errors(&self, document: &str) -> Vec<String> {
        let request = async_graphql::Request::new(document).variables(placeholders(document));
        self.0
            .execute(request)
            .await
            .errors
            .into_iter()
            .map(|error| error.message)
            .collect()
    }
}

/// A value of the right type for every variable the document's operations declare.
fn placeholders(document: &str) -> async_graphql::Variables {
    use async_graphql::parser::types::BaseType;
    let mut values = serde_json::Map::new();
    if let Ok(document) = async_graphql::parser::parse_query(document) {
        for (_, operation) in document.operations.iter() {
            for definition in &operation.node.variable_definitions {
                let value = match &definition.node.var_type.node.base {
                    BaseType::List(_) => serde_json::json!([]),
                    BaseType::Named(name) => match name.as_str() {
                        "Int" => serde_json::json!(1),
                        "Float" => serde_json::json!(1.0),
                        "Boolean" => serde_json::json!(true),
                        "ID" => serde_json::json!("1"),
                        _ => serde_json::json!("x"),
                    },
                };
                values.insert(definition.node.name.node.to_string(), value);
            }
        }
    }
    async_graphql::Variables::from_json(serde_json::Value::Object(values))
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
