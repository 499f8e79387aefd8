//! The GraphQL API as this server runs it: async-graphql's engine, and what runs once around
//! each operation, in this order:
//! 1. persisted queries: a hash becomes its document, or only registered operations pass
//!    ([`super::persisted`]);
//! 2. the document is parsed, or taken from the documents already parsed ([`super::documents`];
//!    a remembered persisted query is parsed too), and checked against the document limits
//!    ([`super::limits`]);
//! 3. the engine validates it (cost, directives, nesting) and executes it;
//! 4. every error the engine produced gets our code, the root fields come back in the query's
//!    order ([`super::field_order`]), and the operation is counted and timed
//!    ([`super::observe`]).
//!
//! Steps 1, 2 and 4 are not async-graphql extensions on purpose: while any extension is
//! registered, the engine calls the extension chain around every field it resolves (a boxed
//! future per extension and a type lookup per field). A 50-seat seat map resolves about 300
//! fields; with the four extensions it had, they took about a third of the server's CPU for it
//! (`docs/performance.md`). The schema has no extension, so a field costs its resolver only.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{BatchRequest, BatchResponse, Data, Executor, Name, ObjectType, Request};
use async_graphql::{Response, Schema, ServerError, ServerResult, SubscriptionType};
use futures::future::join_all;
use futures::stream::{self, BoxStream, StreamExt};

use super::documents::Documents;
use super::field_order::{for_each_root_field, reorder};
use super::limits::DocumentLimits;
use super::observe;
use super::persisted::Persisted;

/// A schema (the API's: `super::AppApi`) and what runs around each of its operations. Cheap to
/// clone.
pub struct Api<Query, Mutation, Subscription> {
    schema: Schema<Query, Mutation, Subscription>,
    persisted: Persisted,
    documents: Documents,
    limits: DocumentLimits,
}

impl<Q, M, S> Clone for Api<Q, M, S> {
    fn clone(&self) -> Self {
        Self {
            schema: self.schema.clone(),
            persisted: self.persisted.clone(),
            documents: self.documents.clone(),
            limits: self.limits,
        }
    }
}

/// A request checked and ready to run, or the error that refused it before anything ran.
pub struct Prepared {
    started: Instant,
    outcome: ServerResult<(Request, Plan)>,
}

/// One [`Prepared`] per operation of a request body (a single operation, or a batch of them).
pub struct PreparedBatch {
    single: bool,
    operations: Vec<Prepared>,
}

/// What the document says about the operation that will run.
struct Plan {
    /// Its metric label (its root field names).
    label: String,
    /// Its root response keys, in the query's order.
    order: Vec<Name>,
    mutation: bool,
}

impl<Q, M, S> Api<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    pub(super) fn new(
        schema: Schema<Q, M, S>,
        persisted: Persisted,
        limits: DocumentLimits,
    ) -> Self {
        Self {
            schema,
            persisted,
            documents: Documents::new(),
            limits,
        }
    }

    /// Steps 1 and 2: the request's document, parsed and within the limits.
    pub async fn prepare(&self, request: Request) -> Prepared {
        let started = Instant::now();
        Prepared {
            started,
            outcome: self.check(request).await,
        }
    }

    pub async fn prepare_batch(&self, batch: BatchRequest) -> PreparedBatch {
        match batch {
            BatchRequest::Single(request) => PreparedBatch {
                single: true,
                operations: vec![self.prepare(request).await],
            },
            BatchRequest::Batch(requests) => PreparedBatch {
                single: false,
                operations: join_all(requests.into_iter().map(|request| self.prepare(request)))
                    .await,
            },
        }
    }

    /// Steps 3 and 4: runs a prepared request (or answers its refusal).
    pub async fn run(&self, prepared: Prepared) -> Response {
        let (label, response) = match prepared.outcome {
            Ok((request, plan)) => {
                let mut response = self.schema.execute(request).await;
                observe::code_engine_errors(&mut response.errors);
                reorder(&mut response.data, &plan.order);
                (plan.label, response)
            }
            Err(error) => (
                observe::NO_OPERATION.to_owned(),
                Response::from_errors(vec![error]),
            ),
        };
        observe::record(&label, &response, prepared.started.elapsed());
        response
    }

    /// Runs every operation of a batch at once; the answers keep the batch's order.
    pub async fn run_batch(&self, batch: PreparedBatch) -> BatchResponse {
        let mut answers = join_all(
            batch
                .operations
                .into_iter()
                .map(|prepared| self.run(prepared)),
        )
        .await;
        if batch.single {
            BatchResponse::Single(answers.pop().expect("a single operation has one answer"))
        } else {
            BatchResponse::Batch(answers)
        }
    }

    async fn check(&self, request: Request) -> ServerResult<(Request, Plan)> {
        let mut request = self.persisted.resolve(request).await?;
        let operation_name = request.operation_name.clone();
        let document = self
            .documents
            .parse(&mut request)
            .map_err(observe::parse_error)?;
        self.limits.check(document)?;
        let plan = Plan::of(document, operation_name.as_deref());
        Ok((request, plan))
    }
}

impl Prepared {
    /// Whether it runs a mutation (which is never cut off half-way).
    pub fn mutates(&self) -> bool {
        matches!(&self.outcome, Ok((_, plan)) if plan.mutation)
    }
}

impl PreparedBatch {
    pub fn mutates(&self) -> bool {
        self.operations.iter().any(Prepared::mutates)
    }
}

impl Plan {
    /// Reads the operation named `operation_name` (or the only one) in one walk of its root
    /// fields. When there is no such operation the engine refuses the request; the plan is empty.
    fn of(document: &ExecutableDocument, operation_name: Option<&str>) -> Self {
        let mut fields = BTreeSet::new();
        let mut order: Vec<Name> = Vec::new();
        let mut mutation = false;
        let operation = document
            .operations
            .iter()
            .find(|(name, _)| operation_name.is_none() || name.map(Name::as_str) == operation_name);
        if let Some((_, operation)) = operation {
            mutation = operation.node.ty == OperationType::Mutation;
            for_each_root_field(document, &operation.node.selection_set.node, &mut |field| {
                fields.insert(field.name.node.to_string());
                let key = field
                    .alias
                    .as_ref()
                    .map_or(&field.name.node, |alias| &alias.node);
                if !order.contains(key) {
                    order.push(key.clone());
                }
            });
        }
        Self {
            label: observe::operation_label(&fields),
            order,
            mutation,
        }
    }
}

/// The websocket transport runs operations through the same steps.
impl<Q, M, S> Executor for Api<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    async fn execute(&self, request: Request) -> Response {
        let prepared = self.prepare(request).await;
        self.run(prepared).await
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let api = self.clone();
        stream::once(async move {
            match api.prepare(request).await.outcome {
                Ok((request, _)) => {
                    let responses = match session_data {
                        Some(data) => api.schema.execute_stream_with_session_data(request, data),
                        None => api.schema.execute_stream(request),
                    };
                    responses
                        .map(|mut response| {
                            observe::code_engine_errors(&mut response.errors);
                            response
                        })
                        .boxed()
                }
                Err(error) => refused(error),
            }
        })
        .flatten()
        .boxed()
    }
}

fn refused(error: ServerError) -> BoxStream<'static, Response> {
    stream::once(async move { Response::from_errors(vec![error]) }).boxed()
}
