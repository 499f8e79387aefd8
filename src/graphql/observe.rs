//! What every operation's answer gets on its way out: a stable `extensions.code` on every error
//! the GraphQL engine produced (resolver errors already carry theirs, from `AppError`), and the
//! per-operation request count, latency and errors.

use std::collections::BTreeSet;
use std::time::Duration;

use async_graphql::{Response, ServerError, Value};

use crate::error::{code, set_engine_code};
use crate::metrics as m;

/// The label of a request that never reached an operation (unparsable, refused by a limit).
pub(super) const NO_OPERATION: &str = "none";

/// A bounded label: the schema's root field names (never client-chosen operation names).
pub(super) fn operation_label(root_fields: &BTreeSet<String>) -> String {
    match root_fields.len() {
        0 => NO_OPERATION.to_owned(),
        1..=3 => root_fields.iter().cloned().collect::<Vec<_>>().join(","),
        _ => "multiple".to_owned(),
    }
}

/// The code of a document that does not parse.
pub(super) fn parse_error(mut error: ServerError) -> ServerError {
    let code = if error.message.contains("recursion") {
        code::QUERY_TOO_DEEP
    } else {
        code::GRAPHQL_PARSE_FAILED
    };
    set_engine_code(&mut error, code);
    error
}

/// Gives each error the engine left without a code (its checks before running, and its
/// coercion of arguments while running) one of ours.
pub(super) fn code_engine_errors(errors: &mut [ServerError]) {
    for error in errors
        .iter_mut()
        .filter(|error| error_code(error).is_none())
    {
        let message = error.message.as_str();
        let code = if message.contains("number of directives") {
            code::TOO_MANY_DIRECTIVES
        } else if message.contains("recursion depth") || message == "Query is nested too deep." {
            code::QUERY_TOO_DEEP
        } else if message == "Query is too complex." {
            code::QUERY_TOO_COMPLEX
        } else if message.starts_with("Unknown operation named")
            || message == "Operation name required in request."
        {
            code::BAD_USER_INPUT
        } else if error.path.is_empty() {
            // Validation against the schema: nothing ran, so no field path.
            code::GRAPHQL_VALIDATION_FAILED
        } else {
            // A field's arguments the engine could not coerce while running.
            code::BAD_USER_INPUT
        };
        set_engine_code(error, code);
    }
}

/// Counts and times one operation, and counts its errors by code.
pub(super) fn record(operation: &str, response: &Response, elapsed: Duration) {
    let outcome = if response.errors.is_empty() {
        "ok"
    } else {
        "error"
    };
    metrics::counter!(m::GRAPHQL_REQUESTS_TOTAL, "operation" => operation.to_owned(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!(m::GRAPHQL_REQUEST_DURATION_SECONDS, "operation" => operation.to_owned())
        .record(elapsed.as_secs_f64());
    for error in &response.errors {
        let code = error_code(error).unwrap_or(code::INTERNAL).to_owned();
        metrics::counter!(m::GRAPHQL_ERRORS_TOTAL, "operation" => operation.to_owned(), "code" => code)
            .increment(1);
    }
}

fn error_code(error: &ServerError) -> Option<&str> {
    match error.extensions.as_ref()?.get("code")? {
        Value::String(code) => Some(code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coded(message: &str, path: bool) -> String {
        let mut error = ServerError::new(message, None);
        if path {
            error
                .path
                .push(async_graphql::PathSegment::Field("me".into()));
        }
        let mut errors = [error];
        code_engine_errors(&mut errors);
        error_code(&errors[0]).expect("coded").to_owned()
    }

    #[test]
    fn engine_errors_get_our_codes() {
        assert_eq!(
            coded("Query is too complex.", false),
            code::QUERY_TOO_COMPLEX
        );
        assert_eq!(
            coded("Query is nested too deep.", false),
            code::QUERY_TOO_DEEP
        );
        assert_eq!(
            coded(
                "The number of directives on the field `a` cannot be greater than `4`",
                false
            ),
            code::TOO_MANY_DIRECTIVES
        );
        assert_eq!(
            coded(r#"Unknown operation named "x""#, false),
            code::BAD_USER_INPUT
        );
        assert_eq!(
            coded(r#"Unknown field "nope" on type "Query"."#, false),
            code::GRAPHQL_VALIDATION_FAILED
        );
        assert_eq!(
            coded(r#"Failed to parse "Int": not an integer"#, true),
            code::BAD_USER_INPUT
        );
    }

    #[test]
    fn a_code_already_given_is_kept() {
        let mut errors = [crate::error::engine_error("taken", code::SEAT_UNAVAILABLE)];
        code_engine_errors(&mut errors);
        assert_eq!(error_code(&errors[0]), Some(code::SEAT_UNAVAILABLE));
    }

    #[test]
    fn labels_are_bounded() {
        let fields = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect();
        assert_eq!(operation_label(&fields(&[])), NO_OPERATION);
        assert_eq!(operation_label(&fields(&["me", "concerts"])), "concerts,me");
        assert_eq!(operation_label(&fields(&["a", "b", "c", "d"])), "multiple");
    }
}
