//! A schema extension that gives every error a stable `extensions.code` and records per-operation
//! request counts, latency and errors. Resolver errors already carry their code (`AppError`);
//! this adds codes to the errors the GraphQL engine itself produces.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest,
    NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Value, Variables};

use super::field_order::for_each_root_field;
use crate::error::{code, set_engine_code};
use crate::metrics as m;

/// Registers [`Observability`] on a schema.
pub struct Observability;

impl ExtensionFactory for Observability {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestObserver::default())
    }
}

/// One per request: remembers the root fields the executed operation selects, which name it in
/// metrics. They are read from the parsed document once per request, not from a hook on every
/// resolved field (a boxed future per field of every response).
#[derive(Default)]
struct RequestObserver {
    /// The root fields of each operation of the document, by operation name.
    by_operation: Mutex<Vec<(Option<String>, BTreeSet<String>)>>,
    root_fields: Mutex<BTreeSet<String>>,
}

impl RequestObserver {
    /// A bounded label: the schema's root field names (never client-chosen operation names).
    fn operation_label(&self) -> String {
        let fields = self
            .root_fields
            .lock()
            .expect("root field set is never poisoned");
        match fields.len() {
            0 => "none".to_owned(),
            1..=3 => fields.iter().cloned().collect::<Vec<_>>().join(","),
            _ => "multiple".to_owned(),
        }
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for RequestObserver {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = Instant::now();
        let mut response = next.run(ctx).await;
        for error in &mut response.errors {
            if error_code(error).is_none() {
                super::persisted::recode(error);
            }
            if error_code(error).is_none() {
                // Left uncoded only by the engine's own checks on arguments and operation names.
                set_engine_code(error, code::BAD_USER_INPUT);
            }
        }
        let operation = self.operation_label();
        let outcome = if response.errors.is_empty() {
            "ok"
        } else {
            "error"
        };
        metrics::counter!(m::GRAPHQL_REQUESTS_TOTAL, "operation" => operation.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!(m::GRAPHQL_REQUEST_DURATION_SECONDS, "operation" => operation.clone())
            .record(started.elapsed().as_secs_f64());
        for error in &response.errors {
            let code = error_code(error).unwrap_or(code::INTERNAL).to_owned();
            metrics::counter!(m::GRAPHQL_ERRORS_TOTAL, "operation" => operation.clone(), "code" => code)
                .increment(1);
        }
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let parsed = next.run(ctx, query, variables).await;
        if let Ok(document) = &parsed {
            *self
                .by_operation
                .lock()
                .expect("operation map is never poisoned") = root_fields_of(document);
        }
        parsed.map_err(|mut error| {
            let code = if error.message.contains("number of directives") {
                code::TOO_MANY_DIRECTIVES
            } else if error.message.contains("recursion") {
                code::QUERY_TOO_DEEP
            } else {
                code::GRAPHQL_PARSE_FAILED
            };
            set_engine_code(&mut error, code);
            error
        })
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|mut errors| {
            for error in &mut errors {
                let code = match error.message.as_str() {
                    "Query is nested too deep." => code::QUERY_TOO_DEEP,
                    "Query is too complex." => code::QUERY_TOO_COMPLEX,
                    _ => code::GRAPHQL_VALIDATION_FAILED,
                };
                set_engine_code(error, code);
            }
            errors
        })
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let selected = {
            let operations = self
                .by_operation
                .lock()
                .expect("operation map is never poisoned");
            operations
                .iter()
                .find(|(name, _)| operation_name.is_none() || name.as_deref() == operation_name)
                .map(|(_, fields)| fields.clone())
        };
        if let Some(fields) = selected {
            *self
                .root_fields
                .lock()
                .expect("root field set is never poisoned") = fields;
        }
        next.run(ctx, operation_name).await
    }
}

/// The root field names each operation of `document` selects, through its fragments.
fn root_fields_of(document: &ExecutableDocument) -> Vec<(Option<String>, BTreeSet<String>)> {
    document
        .operations
        .iter()
        .map(|(name, operation)| {
            let mut fields = BTreeSet::new();
            for_each_root_field(document, &operation.node.selection_set.node, &mut |field| {
                fields.insert(field.name.node.to_string());
            });
            (name.map(ToString::to_string), fields)
        })
        .collect()
}

fn error_code(error: &ServerError) -> Option<&str> {
    match error.extensions.as_ref()?.get("code")? {
        Value::String(code) => Some(code),
        _ => None,
    }
}
