//! What resolvers read from the request's GraphQL data: the application, the caller, the queue
//! token header and the request's dataloaders.

use async_graphql::Context;

use crate::app::App;
use crate::auth::{Identity, Viewer};
use crate::error::AppError;
use crate::graphql::loaders::Loaders;

pub(crate) fn app<'a>(ctx: &Context<'a>) -> &'a App {
    ctx.data_unchecked::<App>()
}

/// The `Queue-Token` header of an HTTP request, for operations that need an ACTIVE token.
#[derive(Debug, Clone)]
pub struct QueueTokenHeader(pub Option<String>);

/// The request's queue token, if it sent one.
pub(crate) fn queue_token<'a>(ctx: &Context<'a>) -> Option<&'a str> {
    ctx.data_opt::<QueueTokenHeader>()
        .and_then(|header| header.0.as_deref())
}

/// The authenticated caller, or `UNAUTHENTICATED`.
pub(crate) fn viewer(ctx: &Context<'_>) -> Result<Viewer, AppError> {
    ctx.data_opt::<Identity>()
        .unwrap_or(&Identity::Anonymous)
        .viewer()
}

pub(crate) fn loaders<'a>(ctx: &Context<'a>) -> &'a Loaders {
    ctx.data_unchecked::<Loaders>()
}
