//! Answers list the root fields in the order the query asked for them, as the GraphQL
//! specification requires.
//!
//! `Query` and `Mutation` are merged from one object per area of the API
//! (`async_graphql::MergedObject`), and async-graphql resolves a merged object area by area:
//! `{ me concerts }` came back as `concerts`, then `me`. Objects below the root are plain objects
//! and keep the query's order. This extension remembers each operation's root response keys (alias
//! or name, through fragments, in document order) when the document is parsed, and puts the
//! executed operation's `data` back in that order.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery,
};
use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::{Name, Response, ServerResult, Value, Variables};

/// Registers [`RootOrder`] on a schema.
pub struct FieldOrder;

impl ExtensionFactory for FieldOrder {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RootOrder::default())
    }
}

/// One per request: the root response keys of each operation, by operation name.
#[derive(Default)]
struct RootOrder {
    by_operation: Mutex<Vec<(Option<String>, Vec<Name>)>>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for RootOrder {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let orders = document
            .operations
            .iter()
            .map(|(name, operation)| {
                let mut keys = Vec::new();
                response_keys(&document, &operation.node.selection_set.node, &mut keys);
                (name.map(ToString::to_string), keys)
            })
            .collect();
        *self.by_operation.lock().expect("never poisoned") = orders;
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        let keys = self
            .by_operation
            .lock()
            .expect("never poisoned")
            .iter()
            .find(|(name, _)| operation_name.is_none() || name.as_deref() == operation_name)
            .map(|(_, keys)| keys.clone());
        if let (Some(keys), Value::Object(data)) = (keys, &mut response.data) {
            let mut ordered = async_graphql::indexmap::IndexMap::with_capacity(data.len());
            for key in keys {
                if let Some(value) = data.shift_remove(&key) {
                    ordered.insert(key, value);
                }
            }
            // Anything not foreseen (there should be nothing) keeps its place at the end.
            ordered.extend(data.drain(..));
            *data = ordered;
        }
        response
    }
}

/// The response keys `set` produces, in document order, each once.
fn response_keys(document: &ExecutableDocument, set: &SelectionSet, keys: &mut Vec<Name>) {
    for_each_root_field(document, set, &mut |field| {
        let key = field
            .alias
            .as_ref()
            .map_or(&field.name.node, |alias| &alias.node);
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    });
}

/// Calls `visit` with each field `set` selects at its own level, through inline fragments and
/// fragment spreads, in document order (the root fields, for a root selection set).
pub(super) fn for_each_root_field(
    document: &ExecutableDocument,
    set: &SelectionSet,
    visit: &mut impl FnMut(&Field),
) {
    walk(document, set, visit, 0);
}

fn walk(
    document: &ExecutableDocument,
    set: &SelectionSet,
    visit: &mut impl FnMut(&Field),
    spreads: usize,
) {
    // Fragment cycles are refused by validation, which runs after this.
    if spreads > 16 {
        return;
    }
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => visit(&field.node),
            Selection::InlineFragment(fragment) => {
                walk(document, &fragment.node.selection_set.node, visit, spreads);
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    walk(
                        document,
                        &fragment.node.selection_set.node,
                        visit,
                        spreads + 1,
                    );
                }
            }
        }
    }
}
