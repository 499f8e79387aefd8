//! Limits on what a document may ask for, checked on the parsed document before it is validated
//! or run: how deep its fields nest, how many aliases it uses, and whether it may introspect the
//! schema at all.
//!
//! Aliases are how one small document asks for the same expensive field many times over (60
//! aliases of the whole catalogue in 3.8 kB answered 1.3 MB); `GRAPHQL_MAX_ALIASES` bounds them,
//! counted through fragments, and more are refused with `TOO_MANY_ALIASES`.
//!
//! Introspection is counted apart. The standard introspection query of graphql-js
//! (`getIntrospectionQuery()`, what GraphiQL, Apollo tooling, graphql-codegen, Postman and
//! Insomnia send) nests 15 fields deep, most of it the `ofType` chain of its `TypeRef` fragment,
//! while no query of our API needs more than a handful of levels. So the fields under `__schema`
//! and `__type` have their own bound, [`INTROSPECTION_MAX_DEPTH`], and the rest of the document
//! keeps `GRAPHQL_MAX_DEPTH`. With `GRAPHQL_INTROSPECTION=false` a document that selects
//! `__schema` or `__type` is refused with `INTROSPECTION_DISABLED`; `__typename` stays allowed
//! (clients add it to every selection).

use async_graphql::ServerResult;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

use crate::error::{code, engine_error};

/// The deepest nesting inside `__schema` / `__type`: room for graphql-js's introspection query
/// (15 levels from the root) and a little more, never an unbounded `ofType` chain.
pub const INTROSPECTION_MAX_DEPTH: usize = 20;

/// The limits every document is checked against once parsed.
#[derive(Clone, Copy)]
pub struct DocumentLimits {
    /// The deepest nesting of the API's own fields.
    pub max_depth: usize,
    /// Whether `__schema` and `__type` may be asked for.
    pub introspection: bool,
    /// The most aliased fields in one document.
    pub max_aliases: usize,
}

/// What the walk over a document found.
#[derive(Default)]
struct Shape {
    /// Deepest nesting of the API's own fields.
    depth: usize,
    /// Deepest nesting counted from the root, for fields under `__schema` / `__type`.
    introspection_depth: usize,
    introspects: bool,
    aliases: usize,
}

impl DocumentLimits {
    /// Refuses a document over a limit, with the limit's code.
    pub(super) fn check(&self, document: &ExecutableDocument) -> ServerResult<()> {
        let mut shape = Shape::default();
        for (_, operation) in document.operations.iter() {
            walk(
                document,
                &operation.node.selection_set.node,
                Place::default(),
                self,
                &mut shape,
            );
        }
        if shape.introspects && !self.introspection {
            return Err(engine_error(
                "introspection is turned off on this server",
                code::INTROSPECTION_DISABLED,
            ));
        }
        if shape.aliases > self.max_aliases {
            return Err(engine_error(
                format!(
                    "the query uses {} aliases; at most {} are allowed",
                    shape.aliases, self.max_aliases
                ),
                code::TOO_MANY_ALIASES,
            ));
        }
        if shape.depth > self.max_depth {
            return Err(engine_error(
                format!(
                    "the query nests fields {} deep; at most {} are allowed",
                    shape.depth, self.max_depth
                ),
                code::QUERY_TOO_DEEP,
            ));
        }
        if shape.introspection_depth > INTROSPECTION_MAX_DEPTH {
            return Err(engine_error(
                format!(
                    "the introspection query nests fields {} deep; at most {INTROSPECTION_MAX_DEPTH} are allowed",
                    shape.introspection_depth
                ),
                code::QUERY_TOO_DEEP,
            ));
        }
        Ok(())
    }
}

/// Where the walk is: how deep, and whether under an introspection field.
#[derive(Clone, Copy, Default)]
struct Place {
    depth: usize,
    /// Fragment spreads followed on the way here (fragment cycles are refused by validation,
    /// which runs after this).
    spreads: usize,
    introspection: bool,
}

fn walk(
    document: &ExecutableDocument,
    set: &SelectionSet,
    place: Place,
    limits: &DocumentLimits,
    shape: &mut Shape,
) {
    // Past both bounds the document is refused whatever lies deeper; a fragment cycle stops here.
    if place.depth > limits.max_depth.max(INTROSPECTION_MAX_DEPTH) || place.spreads > 64 {
        return;
    }
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                let name = field.node.name.node.as_str();
                let introspection = place.introspection || name == "__schema" || name == "__type";
                shape.introspects |= introspection;
                shape.aliases += usize::from(field.node.alias.is_some());
                let depth = place.depth + 1;
                if introspection {
                    shape.introspection_depth = shape.introspection_depth.max(depth);
                } else {
                    shape.depth = shape.depth.max(depth);
                }
                let inner = Place {
                    depth,
                    introspection,
                    ..place
                };
                walk(
                    document,
                    &field.node.selection_set.node,
                    inner,
                    limits,
                    shape,
                );
            }
            Selection::InlineFragment(fragment) => {
                walk(
                    document,
                    &fragment.node.selection_set.node,
                    place,
                    limits,
                    shape,
                );
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    let inner = Place {
                        spreads: place.spreads + 1,
                        ..place
                    };
                    walk(
                        document,
                        &fragment.node.selection_set.node,
                        inner,
                        limits,
                        shape,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str, max_depth: usize, introspection: bool) -> Result<(), String> {
        let document = async_graphql::parser::parse_query(query).expect("a valid document");
        DocumentLimits {
            max_depth,
            introspection,
            max_aliases: 3,
        }
        .check(&document)
        .map_err(|error| {
            let code = error
                .extensions
                .as_ref()
                .and_then(|extensions| extensions.get("code"))
                .map(ToString::to_string)
                .unwrap_or_default();
            format!("{code}: {}", error.message)
        })
    }

    #[test]
    fn depth_counts_fields_through_fragments() {
        let query = "query { a { ...F } } fragment F on T { b { ... on T { c { d } } } }";
        assert!(check(query, 4, true).is_ok());
        let refused = check(query, 3, true).unwrap_err();
        assert!(refused.contains("QUERY_TOO_DEEP"), "{refused}");
        assert!(refused.contains("4 deep"), "{refused}");
    }

    #[test]
    fn introspection_has_its_own_bound_and_can_be_turned_off() {
        let type_ref = "ofType { ".repeat(12) + "name " + &"}".repeat(12);
        let standard =
            format!("{{ __schema {{ types {{ fields {{ type {{ {type_ref} }} }} }} }} }}");
        assert!(
            check(&standard, 3, true).is_ok(),
            "not held to the API's depth"
        );
        let endless = format!(
            "{{ __type(name: \"Query\") {{ {} name {} }} }}",
            "ofType { ".repeat(25),
            "}".repeat(25)
        );
        let refused = check(&endless, 10, true).unwrap_err();
        assert!(refused.contains("QUERY_TOO_DEEP"), "{refused}");

        let refused = check("{ __schema { queryType { name } } }", 10, false).unwrap_err();
        assert!(refused.contains("INTROSPECTION_DISABLED"), "{refused}");
        let refused = check("{ a { b } __type(name: \"A\") { name } }", 10, false).unwrap_err();
        assert!(refused.contains("INTROSPECTION_DISABLED"), "{refused}");
        assert!(
            check("{ a { __typename b } }", 10, false).is_ok(),
            "__typename stays"
        );
    }

    #[test]
    fn aliases_are_counted_through_fragments() {
        assert!(check("{ a: x b: x c: x y }", 10, true).is_ok());
        let refused =
            check("{ a: x ...F } fragment F on T { b: x c: x d: x }", 10, true).unwrap_err();
        assert!(refused.contains("TOO_MANY_ALIASES"), "{refused}");
        assert!(refused.contains("4 aliases"), "{refused}");
    }

    #[test]
    fn a_fragment_cycle_ends_the_walk() {
        let query = "{ a { ...F } } fragment F on T { b { ...F } }";
        let refused = check(query, 10, true).unwrap_err();
        assert!(refused.contains("QUERY_TOO_DEEP"), "{refused}");
    }
}
