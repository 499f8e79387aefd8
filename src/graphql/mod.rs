//! The GraphQL API: schema assembly, limits, and the per-request data resolvers rely on.
//! Resolvers stay thin: parse arguments, call one service function, convert the result.

mod catalogue;
mod extension;
pub mod loaders;

use async_graphql::{
    Context, EmptyMutation, EmptySubscription, MergedObject, Schema, SchemaBuilder,
};

use crate::config::Config;
use crate::startup::Services;

pub use loaders::Loaders;

/// Read operations. Each area of the API contributes its own query object.
#[derive(MergedObject, Default)]
pub struct Query(catalogue::CatalogueQuery);

pub type AppSchema = Schema<Query, EmptyMutation, EmptySubscription>;

fn builder(config: &Config) -> SchemaBuilder<Query, EmptyMutation, EmptySubscription> {
    Schema::build(Query::default(), EmptyMutation, EmptySubscription)
        .limit_depth(config.graphql_max_depth)
        .limit_complexity(config.graphql_max_complexity)
        .limit_directives(config.graphql_max_directives)
        .extension(extension::Observability)
}

/// The schema served by this instance.
pub fn build_schema(services: Services) -> AppSchema {
    let config = services.config.clone();
    builder(&config).data(services).finish()
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    let config = Config::from_env().expect("default configuration always parses");
    builder(&config).finish().sdl()
}

fn services<'a>(ctx: &Context<'a>) -> &'a Services {
    ctx.data_unchecked::<Services>()
}

fn loaders<'a>(ctx: &Context<'a>) -> &'a Loaders {
    ctx.data_unchecked::<Loaders>()
}
