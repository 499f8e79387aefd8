//! Hostile input, generated from the schema. The live schema is read by introspection; every
//! root query and mutation is sent with every combination of hostile values for its arguments
//! (chosen by the argument's type; past 500 combinations, every value of every argument once), as
//! variables and as inline literals, under seven kinds of access token (an organiser's among
//! them), with every scalar field of its result selected; then deep, wide and aliased
//! shapes and malformed bodies. At least 10,000 requests. Every answer must be ours: no 5xx, every
//! error with a code that is not INTERNAL, no library or database text, within a time bound.
//! Afterwards the server still answers and `verify` passes. Over the websocket, malformed and
//! out-of-order graphql-transport-ws frames under three kinds of `connection_init` must be
//! answered with the protocol's own close codes or coded errors, never an internal error.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{TestApp, ws};

/// Text that must never reach a client: library, database and runtime words.
const INTERNAL_TEXT: &[&str] = &[
    "diesel",
    "postgres",
    "SQLSTATE",
    "sqlx",
    "redis",
    "Redis",
    "panicked",
    "unwrap",
    "thread '",
    "relation \"",
    "syntax error at",
    "violates",
    "duplicate key",
    "invalid type:",
    "serde",
    "Base64",
    "tokio",
    "called `",
    "stack backtrace",
    "src/",
];

/// An answer slower than this is a failure (a debug build on a shared 2-core machine).
const TIME_BOUND: Duration = Duration::from_secs(5);

const TYPE_REF: &str = "kind name ofType { kind name ofType { kind name ofType { kind name } } }";

/// One generated request: the GraphQL body and the authorization header, if any.
struct Case {
    body: Value,
    authorization: Option<String>,
}

/// The named type at the bottom of a type reference, and whether it is a list.
fn named(type_ref: &Value) -> (String, bool) {
    let mut t = type_ref;
    let mut list = false;
    while t["name"].is_null() {
        list |= t["kind"] == "LIST";
        t = &t["ofType"];
    }
    (t["name"].as_str().unwrap_or_default().to_owned(), list)
}

/// Hostile values for an argument of type `name` of kind `kind` (`list`: a list of it).
fn values_for(name: &str, kind: &str, list: bool, queue_token: &str) -> Vec<Value> {
    let huge = "9".repeat(10_000);
    let ids = vec![
        json!("1"),
        json!("0"),
        json!("-1"),
        json!(""),
        json!(" "),
        json!("abc"),
        json!("1e3"),
        json!("0x1"),
        json!("+1"),
        json!("1.0"),
        json!("99999999999999999999"),
        json!("9223372036854775807"),
        json!("１"),
        json!("1; DROP TABLE seats"),
        json!("\u{0}"),
        json!(huge),
        Value::Null,
        json!(1),
        json!(true),
        json!({ "id": 1 }),
    ];
    if kind == "INPUT_OBJECT" {
        let shapes = vec![
            json!({}),
            json!({ "unknown": 1 }),
            json!({ "name": "\u{0}", "rows": [], "concertId": "-1", "venue": "", "startsAt": "x" }),
            json!("x"),
            Value::Null,
        ];
        return if list {
            vec![
                json!([]),
                json!(shapes),
                json!([null]),
                json!("x"),
                Value::Null,
            ]
        } else {
            shapes
        };
    }
    if list {
        let many: Vec<Value> = (1..=1_000).map(|i| json!(i.to_string())).collect();
        return vec![
            json!([]),
            json!(["1"]),
            json!(["1", "1"]),
            json!(["-1", "2"]),
            json!([null]),
            json!(many),
            json!("1"),
            Value::Null,
        ];
    }
    match name {
        "ID" => ids,
        "Int" => vec![
            json!(0),
            json!(-1),
            json!(1),
            json!(2_147_483_647),
            json!(-2_147_483_648),
            json!(2_147_483_648_i64),
            json!(1.5),
            json!("1"),
            Value::Null,
            json!(1e10),
        ],
        "Float" => vec![
            json!(0.0),
            json!(-1.5),
            json!(1e308),
            json!(1e-308),
            json!("NaN"),
            Value::Null,
            json!(true),
        ],
        "Boolean" => vec![
            json!(true),
            json!(false),
            json!("true"),
            json!(1),
            Value::Null,
        ],
        "DateTime" => vec![
            json!("2026-01-01T00:00:00Z"),
            json!("1970-01-01T00:00:00Z"),
            json!("9999-12-31T23:59:59Z"),
            json!("2026-02-30T00:00:00Z"),
            json!("yesterday"),
            json!(""),
            json!(0),
            Value::Null,
        ],
        _ if kind == "ENUM" => vec![json!("VIP"), json!("vip"), json!(""), json!(1), Value::Null],
        _ => vec![
            json!(""),
            json!(" "),
            json!("a"),
            json!("x".repeat(100_000)),
            json!("🎫 café ﷽"),
            json!("\u{0}\u{7}\u{1b}[2J"),
            json!("' OR 1=1 --"),
            json!("%s%n{{}}$1"),
            Value::Null,
            json!(42),
            json!(queue_token),
            json!(format!("{queue_token}x")),
        ],
    }
}

/// `value` as a GraphQL literal.
fn literal(value: &Value) -> String {
    match value {
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{k}: {}", literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(literal).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

/// Beyond this many, an operation's arguments are not combined in full (see `combinations`).
const MAX_COMBINATIONS: usize = 500;

/// Every combination of one value per argument; when there would be more than `max`, every value
/// of every argument once instead, with the other arguments cycling through theirs.
fn combinations(choices: &[Vec<Value>], max: usize) -> Vec<Vec<Value>> {
    let full = choices.iter().map(Vec::len).product::<usize>();
    if full > max {
        return choices
            .iter()
            .enumerate()
            .flat_map(|(i, values)| {
                (0..values.len()).map(move |k| {
                    choices
                        .iter()
                        .enumerate()
                        .map(|(j, other)| {
                            let at = if i == j { k } else { (k + j) % other.len() };
                            other[at].clone()
                        })
                        .collect()
                })
            })
            .collect();
    }
    choices.iter().fold(vec![vec![]], |acc, values| {
        acc.iter()
            .flat_map(|prefix| {
                values.iter().map(move |value| {
                    let mut next = prefix.clone();
                    next.push(value.clone());
                    next
                })
            })
            .collect()
    })
}

/// The scalar and enum fields without required arguments of object type `name`, as a selection.
fn selection(schema: &Value, name: &str) -> String {
    let Some(object) = schema["types"]
        .as_array()
        .and_then(|types| types.iter().find(|t| t["name"] == name))
    else {
        return String::new();
    };
    let mut fields = vec!["__typename".to_owned()];
    for field in object["fields"].as_array().into_iter().flatten() {
        let (of, _) = named(&field["type"]);
        let leaf = schema["types"]
            .as_array()
            .and_then(|types| types.iter().find(|t| t["name"] == of.as_str()))
            .is_some_and(|t| t["kind"] == "SCALAR" || t["kind"] == "ENUM");
        let required = field["args"]
            .as_array()
            .is_some_and(|args| args.iter().any(|a| a["type"]["kind"] == "NON_NULL"));
        if leaf && !required {
            fields.push(field["name"].as_str().unwrap().to_owned());
        }
    }
    format!("{{ {} }}", fields.join(" "))
}

/// The operations of the schema's root type `root` (query or mutation) with hostile arguments.
fn operations(schema: &Value, root: &str, keyword: &str, queue_token: &str) -> Vec<Value> {
    let mut bodies = Vec::new();
    for field in schema[root]["fields"].as_array().into_iter().flatten() {
        let name = field["name"].as_str().unwrap();
        let args: Vec<(String, String, String, Vec<Value>)> = field["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|arg| {
                let (of, list) = named(&arg["type"]);
                let declared = type_text(&arg["type"]);
                let kind = schema["types"]
                    .as_array()
                    .and_then(|types| types.iter().find(|t| t["name"] == of.as_str()))
                    .and_then(|t| t["kind"].as_str())
                    .unwrap_or("SCALAR");
                let values = values_for(&of, kind, list, queue_token);
                (
                    arg["name"].as_str().unwrap().to_owned(),
                    declared,
                    of,
                    values,
                )
            })
            .collect();
        let (result, _) = named(&field["type"]);
        let select = selection(schema, &result);
        let choices: Vec<Vec<Value>> = args.iter().map(|a| a.3.clone()).collect();
        for combination in combinations(&choices, MAX_COMBINATIONS) {
            let call_vars = args
                .iter()
                .map(|a| format!("{}: ${}", a.0, a.0))
                .collect::<Vec<_>>()
                .join(", ");
            let declared = args
                .iter()
                .map(|a| format!("${}: {}", a.0, a.1))
                .collect::<Vec<_>>()
                .join(", ");
            let variables: serde_json::Map<String, Value> = args
                .iter()
                .zip(&combination)
                .map(|(a, v)| (a.0.clone(), v.clone()))
                .collect();
            let (head, call) = if args.is_empty() {
                (keyword.to_owned(), name.to_owned())
            } else {
                (
                    format!("{keyword}({declared})"),
                    format!("{name}({call_vars})"),
                )
            };
            bodies.push(
                json!({ "query": format!("{head} {{ {call} {select} }}"), "variables": variables }),
            );
            let inline = args
                .iter()
                .zip(&combination)
                .map(|(a, v)| format!("{}: {}", a.0, literal(v)))
                .collect::<Vec<_>>()
                .join(", ");
            let call = if args.is_empty() {
                name.to_owned()
            } else {
                format!("{name}({inline})")
            };
            bodies.push(json!({ "query": format!("{keyword} {{ {call} {select} }}") }));
        }
    }
    bodies
}

/// The GraphQL text of a type reference (`[ID!]!`).
fn type_text(type_ref: &Value) -> String {
    match type_ref["kind"].as_str() {
        Some("NON_NULL") => format!("{}!", type_text(&type_ref["ofType"])),
        Some("LIST") => format!("[{}]", type_text(&type_ref["ofType"])),
        _ => type_ref["name"].as_str().unwrap_or_default().to_owned(),
    }
}

/// Deep, wide and aliased shapes, and bodies that are not GraphQL requests at all.
fn shapes() -> Vec<Value> {
    let mut bodies = Vec::new();
    for depth in 1..=40 {
        let open = "concerts { schedules { concert { ".repeat(depth);
        let close = "} } } ".repeat(depth);
        bodies.push(json!({ "query": format!("{{ {open} id {close} }}") }));
    }
    for aliases in [1, 10, 29, 30, 31, 100, 1_000] {
        let fields: String = (0..aliases).map(|i| format!("a{i}: __typename ")).collect();
        bodies.push(json!({ "query": format!("{{ {fields} }}") }));
        let fields: String = (0..aliases)
            .map(|i| format!("c{i}: concerts {{ id }} "))
            .collect();
        bodies.push(json!({ "query": format!("{{ {fields} }}") }));
    }
    for text in [
        "",
        " ",
        "{",
        "}",
        "{ }",
        "query",
        "mutation { }",
        "subscription { queueStatus }",
        "{ __schema { types { name } } }",
        "{ nope }",
        "{ concerts(limit: ) { id } }",
        "query A { me { id } } query B { me { id } }",
        "fragment F on Query { me { id } }",
        "{ ...F } fragment F on Query { ...F }",
        "{ concert(id: \"1\") @skip(if: $x) { id } }",
        "\u{0}",
        "{ concerts { id } } }",
        "#",
        "{ me { id id id id id id id id id id } }",
    ] {
        bodies.push(json!({ "query": text }));
        bodies.push(json!({ "query": text, "operationName": "B" }));
        bodies.push(json!({ "query": text, "variables": "not an object" }));
        bodies.push(json!({ "query": text, "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "00" } } }));
    }
    for other in [
        json!(null),
        json!(42),
        json!("{ me { id } }"),
        json!([]),
        json!([{}]),
        json!({}),
        json!({ "query": 1 }),
        json!({ "query": ["{ me { id } }"] }),
        json!({ "query": null }),
        json!([{ "query": "{ __typename }" }, { "query": "{" }, 7]),
    ] {
        bodies.push(other);
    }
    bodies
}

async fn send(app: &TestApp, case: &Case) -> Result<(), String> {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(case.body.to_string());
    if let Some(authorization) = &case.authorization {
        request = request.header("authorization", authorization);
    }
    let started = Instant::now();
    let response = request
        .send()
        .await
        .map_err(|err| format!("no answer: {err}"))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|err| format!("unreadable: {err}"))?;
    if started.elapsed() > TIME_BOUND {
        return Err(format!("answered after {:?}", started.elapsed()));
    }
    if status >= 500 {
        return Err(format!("status {status}: {text}"));
    }
    let body: Value =
        serde_json::from_str(&text).map_err(|_| format!("not JSON ({status}): {text}"))?;
    let answers = match &body {
        Value::Array(items) => items.clone(),
        single => vec![single.clone()],
    };
    for answer in &answers {
        for error in answer["errors"].as_array().into_iter().flatten() {
            let code = error["extensions"]["code"].as_str().unwrap_or("(none)");
            if code == "(none)" || code == "INTERNAL" {
                return Err(format!("error code {code}: {error}"));
            }
            let message = error["message"].as_str().unwrap_or_default();
            if let Some(word) = INTERNAL_TEXT.iter().find(|word| message.contains(*word)) {
                return Err(format!("internal text {word:?}: {message}"));
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_hostile_requests_get_our_answers_and_break_nothing() {
    let (app, fans) = TestApp::staged(20, 3, 1_000, |_| {}).await;
    let queue_token = fans[0].queue_token.clone().expect("an ACTIVE queue token");

    let schema = app
        .graphql(&format!(
            "{{ __schema {{ queryType {{ name }} mutationType {{ name }} \
                types {{ name kind fields {{ name args {{ name type {{ {TYPE_REF} }} }} type {{ {TYPE_REF} }} }} }} }} }}"
        ))
        .await;
    let mut schema = schema["data"]["__schema"].clone();
    for root in ["queryType", "mutationType"] {
        let name = schema[root]["name"].as_str().unwrap().to_owned();
        let fields = schema["types"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name.as_str())
            .unwrap()["fields"]
            .clone();
        schema[root]["fields"] = fields;
    }

    let mut bodies = operations(&schema, "queryType", "query", &queue_token);
    bodies.extend(operations(
        &schema,
        "mutationType",
        "mutation",
        &queue_token,
    ));
    let valid = app.token_for(fans[0].id);
    let mut forged = valid.clone();
    forged.pop();
    forged.push(if valid.ends_with('A') { 'B' } else { 'A' });
    let tokens = [
        Some(format!("Bearer {valid}")),
        None,
        Some(format!("Bearer {forged}")),
        Some(format!("Bearer {}", app.token_with_ttl(fans[0].id, -3_600))),
        Some(format!("Bearer {}", app.token_for(999_999))),
        Some("Basic dXNlcjpwYXNz".to_owned()),
        Some(format!("Bearer {}", app.organiser_token_for(fans[0].id))),
    ];
    let mut cases: Vec<Case> = bodies
        .iter()
        .flat_map(|body| {
            tokens.iter().map(|authorization| Case {
                body: body.clone(),
                authorization: authorization.clone(),
            })
        })
        .collect();
    cases.extend(shapes().into_iter().map(|body| Case {
        body,
        authorization: Some(format!("Bearer {valid}")),
    }));
    assert!(cases.len() >= 10_000, "{} cases", cases.len());
    println!("{} hostile requests", cases.len());

    let app_ref = &app;
    let failures: Vec<String> = futures::stream::iter(cases.iter())
        .map(|case| async move {
            send(app_ref, case)
                .await
                .err()
                .map(|why| format!("{why}\n  request: {}", truncate(&case.body.to_string())))
        })
        .buffer_unordered(16)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} of {} hostile requests were not answered in our words; the first:\n{}",
        failures.len(),
        cases.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Still alive, and the data still adds up.
    assert_eq!(app.get("/healthz").await.status(), 200);
    let report = app.verify().await;
    assert!(report.passed, "{report}");
}

fn truncate(text: &str) -> String {
    text.chars().take(300).collect()
}

/// Malformed and out-of-order frames for graphql-transport-ws.
fn frames() -> Vec<Message> {
    let subscribe = |id: Value, query: &str, variables: Value| {
        Message::text(
            json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } })
                .to_string(),
        )
    };
    let status = "subscription($t: String!) { queueStatus(token: $t) { status position } }";
    vec![
        Message::text("not json"),
        Message::text("{}"),
        Message::text("[]"),
        Message::text(r#"{"type":"subscribe"}"#),
        Message::text(r#"{"type":"nope","id":"1"}"#),
        Message::text(r#"{"type":"connection_init"}"#),
        Message::text(r#"{"type":"ping"}"#),
        Message::text(r#"{"type":"pong"}"#),
        Message::text(r#"{"type":"complete","id":"never-started"}"#),
        Message::text("x".repeat(1_000_000)),
        Message::binary(vec![0_u8, 1, 2, 255]),
        subscribe(json!("1"), "subscription { nope }", json!({})),
        subscribe(json!("1"), "{", json!({})),
        subscribe(json!("1"), "{ me { id } }", json!({})),
        subscribe(json!(5), status, json!({ "t": "x" })),
        subscribe(json!("1"), status, json!({ "t": "garbage" })),
        subscribe(json!("1"), status, json!({ "t": "x".repeat(100_000) })),
        subscribe(json!("1"), status, json!({ "t": 42 })),
        subscribe(json!("1"), status, json!("not an object")),
        subscribe(
            json!("1"),
            "subscription { seatChanges(scheduleId: \"-1\") { seatId } }",
            json!({}),
        ),
        subscribe(
            json!("1"),
            "subscription { seatChanges(scheduleId: \"\u{0}\") { seatId } }",
            json!({}),
        ),
    ]
}

/// What a probe saw: coded errors, and closes by the server with the protocol's codes.
#[derive(Default)]
struct Seen {
    errors: usize,
    closes: usize,
}

/// Sends `frame` after `init` and reads until the server closes or goes quiet. Ok when every
/// message is a coded, non-internal answer and any close is the protocol's own.
async fn probe(
    app: &TestApp,
    init: &Value,
    frame: &Message,
    seen: &mut Seen,
) -> Result<(), String> {
    let mut socket = ws::connect(app, init.clone()).await;
    // The server may have closed already (a refused `connection_init`): nothing more to send.
    if socket.send(frame.clone()).await.is_err() {
        return Ok(());
    }
    loop {
        let next = match tokio::time::timeout(Duration::from_millis(500), socket.next()).await {
            Err(_) | Ok(None) => return Ok(()),
            Ok(Some(Err(_))) => return Ok(()),
            Ok(Some(Ok(message))) => message,
        };
        match next {
            Message::Text(text) => {
                if let Some(word) = INTERNAL_TEXT.iter().find(|word| text.contains(*word)) {
                    return Err(format!("internal text {word:?}: {text}"));
                }
                let message: Value =
                    serde_json::from_str(&text).map_err(|_| format!("not JSON: {text}"))?;
                let errors = match message["type"].as_str() {
                    Some("error") => message["payload"].as_array().cloned().unwrap_or_default(),
                    Some("next") => message["payload"]["errors"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                    _ => vec![],
                };
                for error in errors {
                    let code = error["extensions"]["code"].as_str().unwrap_or("(none)");
                    if code == "(none)" || code == "INTERNAL" {
                        return Err(format!("error code {code}: {error}"));
                    }
                    seen.errors += 1;
                }
            }
            Message::Close(Some(close)) if close.code == CloseCode::Error => {
                return Err(format!("closed with an internal error: {close}"));
            }
            Message::Close(_) => {
                seen.closes += 1;
                return Ok(());
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_websocket_frames_get_the_protocols_answers() {
    let (app, fans) = TestApp::staged(4, 1, 1_000, |_| {}).await;
    let inits = [
        json!({ "Authorization": format!("Bearer {}", app.token_for(fans[0].id)) }),
        json!({}),
        json!({ "Authorization": "Bearer forged.token.here" }),
    ];
    let mut failures = Vec::new();
    let mut seen = Seen::default();
    for init in &inits {
        for frame in frames() {
            if let Err(why) = probe(&app, init, &frame, &mut seen).await {
                failures.push(format!(
                    "{why}\n  after init {init} and frame {}",
                    truncate(&frame.to_string())
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        seen.errors > 0 && seen.closes > 0,
        "the server answered: {} coded errors, {} closes",
        seen.errors,
        seen.closes
    );
    assert_eq!(app.get("/healthz").await.status(), 200);
}
