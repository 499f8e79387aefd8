//! GraphiQL, served by the server itself: the page at `GET /graphql` (without `query`) and its
//! assets under `/graphiql/`. The production builds of GraphiQL, React, ReactDOM and graphql-ws
//! are vendored in `src/http/graphiql/vendor/` (with their licences and versions) and embedded in
//! the binary, so the page works offline and on locked-down networks: nothing comes from a CDN.
//! `scripts/update-graphiql` refreshes them.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

const PAGE: &str = include_str!("graphiql/page.html");

/// The files under `/graphiql/`: name, media type, content.
const ASSETS: [(&str, &str, &[u8]); 6] = [
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("graphiql/vendor/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("graphiql/vendor/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("graphiql/vendor/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("graphiql/vendor/react-dom.production.min.js"),
    ),
    (
        "graphql-ws.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("graphiql/vendor/graphql-ws.min.js"),
    ),
    (
        "start.js",
        "text/javascript; charset=utf-8",
        include_bytes!("graphiql/start.js"),
    ),
];

/// The GraphiQL page.
pub(super) fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// `GET /graphiql/{file}`: one of the page's assets, cached for a day by the browser.
pub(super) async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, media, body)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(media)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=86400"),
                ),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
