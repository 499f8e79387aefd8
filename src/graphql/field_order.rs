//! Answers list the root fields in the order the query asked for them, as the GraphQL
//! specification requires.
//!
//! `Query` and `Mutation` are merged from one object per area of the API
//! (`async_graphql::MergedObject`), and async-graphql resolves a merged object area by area:
//! `{ me concerts }` came back as `concerts`, then `me`. Objects below the root are plain objects
//! and keep the query's order. The operation's root response keys (alias or name, through
//! fragments, in document order) are read when the document is parsed, and the executed
//! operation's `data` is put back in that order.

use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::{Name, Value};

/// Puts the root fields of `data` in the order of `keys` (the executed operation's response
/// keys, read with [`for_each_root_field`]).
pub(super) fn reorder(data: &mut Value, keys: &[Name]) {
    let Value::Object(data) = data else {
        return;
    };
    let mut ordered = async_graphql::indexmap::IndexMap::with_capacity(data.len());
    for key in keys {
        if let Some(value) = data.shift_remove(key) {
            ordered.insert(key.clone(), value);
        }
    }
    // Anything not foreseen (there should be nothing) keeps its place at the end.
    ordered.extend(data.drain(..));
    *data = ordered;
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
