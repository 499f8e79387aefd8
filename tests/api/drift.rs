//! The load scripts' hand copies of the API stay true to it: the error codes in
//! `k6-graphql/lib/graphql.js` are exactly the codes `src/error.rs` declares (and the README
//! documents), and every GraphQL document in `k6-graphql/**/*.js` is valid against the schema
//! (`schema.graphql`). Each check is also run on a deliberately broken input, so it is known to
//! be able to fail.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::helpers::files::{read, root, walk};
use crate::helpers::schema::ValidatingSchema;

// ---------------------------------------------------------------------------------------------
// Error codes

/// The codes `src/error.rs` declares: every `pub const NAME: &str = "NAME";` of its `code`
/// module, whose name and value must agree.
fn declared_codes(error_rs: &str) -> BTreeSet<String> {
    let start = error_rs
        .find("pub mod code {")
        .expect("src/error.rs declares its codes in `pub mod code`");
    let body = &error_rs[start..];
    let body = &body[..body.find("\n}").expect("the code module ends")];
    body.lines()
        .filter_map(|line| line.trim().strip_prefix("pub const "))
        .map(|declaration| {
            let (name, rest) = declaration
                .split_once(':')
                .unwrap_or_else(|| panic!("a typed constant: {declaration}"));
            let value = rest
                .split('"')
                .nth(1)
                .unwrap_or_else(|| panic!("a string constant: {declaration}"));
            assert_eq!(name.trim(), value, "a code's name is its value");
            value.to_owned()
        })
        .collect()
}

/// The quoted strings of the JS array literal `export const <name> = [ ... ];` in `js`.
fn js_string_array(js: &str, name: &str) -> Vec<String> {
    let start = js
        .find(&format!("export const {name} = ["))
        .unwrap_or_else(|| panic!("`export const {name} = [` is in the script"));
    let body = &js[start..];
    let body = &body[body.find('[').unwrap() + 1..body.find("];").expect("the array ends")];
    body.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.trim_matches(|c| c == '\'' || c == '"' || c == '`')
                .to_owned()
        })
        .collect()
}

/// Codes k6 makes up itself for failures that carry no GraphQL error (see the header of
/// `k6-graphql/lib/graphql.js`): NETWORK, HTTP_<status>, BAD_JSON, NO_CODE.
fn is_client_side(code: &str) -> bool {
    matches!(code, "NETWORK" | "BAD_JSON" | "NO_CODE")
        || code
            .strip_prefix("HTTP_")
            .is_some_and(|status| status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()))
}

/// The codes in the first column of the README's error table (`## Errors`).
fn documented_codes(readme: &str) -> BTreeSet<String> {
    let start = readme
        .find("\n## Errors")
        .expect("the README has `## Errors`");
    let section = &readme[start + 1..];
    let section = &section[..section[1..]
        .find("\n## ")
        .map_or(section.len(), |end| end + 1)];
    section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .flat_map(|line| {
            let cell = line.split('|').nth(1).unwrap_or_default();
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What one side has and the other lacks, in words; empty when both hold the same codes.
fn difference(
    left_name: &str,
    left: &BTreeSet<String>,
    right_name: &str,
    right: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for code in left.difference(right) {
        problems.push(format!("{code} is in {left_name} but not in {right_name}"));
    }
    for code in right.difference(left) {
        problems.push(format!("{code} is in {right_name} but not in {left_name}"));
    }
    problems
}

/// Every drift between the codes of `src/error.rs`, the k6 copy and the README.
fn code_drift(error_rs: &str, graphql_js: &str, operations_js: &str, readme: &str) -> Vec<String> {
    let declared = declared_codes(error_rs);
    let k6 = js_string_array(graphql_js, "ERROR_CODES");
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for code in &k6 {
        if !seen.insert(code.clone()) {
            problems.push(format!("{code} is listed twice in ERROR_CODES"));
        }
    }
    let k6_server: BTreeSet<String> = k6
        .iter()
        .filter(|code| !is_client_side(code) || declared.contains(*code))
        .cloned()
        .collect();
    problems.extend(difference(
        "src/error.rs",
        &declared,
        "k6-graphql/lib/graphql.js ERROR_CODES",
        &k6_server,
    ));
    for code in declared.iter().filter(|code| is_client_side(code)) {
        problems.push(format!(
            "{code} is declared by the server but k6 uses it for its own failures"
        ));
    }
    problems.extend(difference(
        "src/error.rs",
        &declared,
        "the README's error table",
        &documented_codes(readme),
    ));
    for code in js_string_array(operations_js, "TRANSIENT_CODES") {
        if !declared.contains(&code) && !is_client_side(&code) {
            problems.push(format!(
                "{code} in k6-graphql/lib/operations.js TRANSIENT_CODES is no known code"
            ));
        }
    }
    problems
}

#[test]
fn k6_error_codes_are_the_codes_the_server_declares() {
    let problems = code_drift(
        &read("src/error.rs"),
        &read("k6-graphql/lib/graphql.js"),
        &read("k6-graphql/lib/operations.js"),
        &read("README.md"),
    );
    assert!(
        problems.is_empty(),
        "error codes drifted (add or remove each code in src/error.rs, \
         k6-graphql/lib/graphql.js ERROR_CODES and the README's table together):\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn a_code_on_one_side_only_is_caught() {
    let error_rs = read("src/error.rs");
    let graphql_js = read("k6-graphql/lib/graphql.js");
    let operations_js = read("k6-graphql/lib/operations.js");
    let readme = read("README.md");
    assert!(
        declared_codes(&error_rs).len() >= 20,
        "the parser finds the codes"
    );

    // A code only k6 knows.
    let k6_only = graphql_js.replacen("'NOT_OWNER',", "'NOT_OWNER', 'SEAT_GONE',", 1);
    assert_ne!(k6_only, graphql_js);
    assert_eq!(
        code_drift(&error_rs, &k6_only, &operations_js, &readme),
        ["SEAT_GONE is in k6-graphql/lib/graphql.js ERROR_CODES but not in src/error.rs"]
    );

    // A code only the server declares (and documents).
    let server_only = error_rs.replacen(
        "pub mod code {",
        "pub mod code {\n    pub const SEAT_GONE: &str = \"SEAT_GONE\";",
        1,
    );
    let documented = readme.replacen(
        "| `NOT_OWNER` |",
        "| `SEAT_GONE` | gone |\n| `NOT_OWNER` |",
        1,
    );
    assert_eq!(
        code_drift(&server_only, &graphql_js, &operations_js, &documented),
        ["SEAT_GONE is in src/error.rs but not in k6-graphql/lib/graphql.js ERROR_CODES"]
    );

    // A code the README does not document; a transient code nobody declares.
    assert_eq!(
        code_drift(&server_only, &graphql_js, &operations_js, &readme),
        [
            "SEAT_GONE is in src/error.rs but not in k6-graphql/lib/graphql.js ERROR_CODES",
            "SEAT_GONE is in src/error.rs but not in the README's error table",
        ]
    );
    let transient = operations_js.replacen("'BUSY',", "'BUSY', 'SLOW',", 1);
    assert_eq!(
        code_drift(&error_rs, &graphql_js, &transient, &readme),
        ["SLOW in k6-graphql/lib/operations.js TRANSIENT_CODES is no known code"]
    );
}

// ---------------------------------------------------------------------------------------------
// Operation documents

/// Every string literal in a JS source (quoted or template), skipping comments and regex
/// literals. A template's `${...}` parts are kept as written, so a GraphQL document built with
/// them fails to parse instead of passing unchecked.
fn js_strings(js: &str) -> Vec<String> {
    let chars: Vec<char> = js.chars().collect();
    let mut strings = Vec::new();
    let mut i = 0;
    // The last significant character outside strings and comments: a `/` after one of these
    // starts a regex literal, otherwise it divides.
    let mut last = '\n';
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == '/' && "(,=:[!&|?{};\n".contains(last) {
            i = skip_regex(&chars, i);
            last = '/';
        } else if c == '\'' || c == '"' || c == '`' {
            let (text, end) = read_string(&chars, i);
            strings.push(text);
            i = end;
            last = c;
        } else {
            if !c.is_whitespace() {
                last = c;
            }
            i += 1;
        }
    }
    strings
}

/// The index after the regex literal starting at `start` (a `/`).
fn skip_regex(chars: &[char], start: usize) -> usize {
    let mut i = start + 1;
    let mut in_class = false;
    while i < chars.len() && chars[i] != '\n' {
        match chars[i] {
            '\\' => i += 1,
            '[' => in_class = true,
            ']' => in_class = false,
            '/' if !in_class => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// The text of the string literal opening at `start`, and the index after it.
fn read_string(chars: &[char], start: usize) -> (String, usize) {
    let quote = chars[start];
    let mut text = String::new();
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        match chars[i] {
            '\\' => {
                let escaped = chars.get(i + 1).copied().unwrap_or_default();
                text.push(match escaped {
                    'n' => '\n',
                    't' => '\t',
                    other => other,
                });
                i += 2;
            }
            '$' if quote == '`' && chars.get(i + 1) == Some(&'{') => {
                let mut depth = 0;
                while i < chars.len() {
                    text.push(chars[i]);
                    match chars[i] {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
            }
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    (text, i + 1)
}

/// Whether a string is a GraphQL operation document: an operation keyword, an optional name,
/// then variables, directives or the selection set.
fn is_operation(text: &str) -> bool {
    let text = text.trim_start();
    ["query", "mutation", "subscription"].iter().any(|keyword| {
        let Some(rest) = text.strip_prefix(keyword) else {
            return false;
        };
        if !rest.starts_with(|c: char| c.is_whitespace() || "({@".contains(c)) {
            return false;
        }
        let rest = rest.trim_start();
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
        rest.trim_start().starts_with(['(', '{', '@'])
    })
}

/// The JS sources of the load scripts, relative to the project root.
fn k6_scripts() -> Vec<PathBuf> {
    walk(&root().join("k6-graphql"))
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "js"))
        .collect()
}

/// Each document in `js` with the errors the schema finds in it (none when it is valid).
async fn invalid_documents(schema: &ValidatingSchema, js: &str) -> Vec<(String, Vec<String>)> {
    let mut invalid = Vec::new();
    for document in js_strings(js).into_iter().filter(|text| is_operation(text)) {
        let errors = schema.errors(&document).await;
        if !errors.is_empty() {
            invalid.push((document, errors));
        }
    }
    invalid
}

#[tokio::test]
async fn every_k6_operation_is_valid_against_the_schema() {
    let schema = ValidatingSchema::new();
    assert!(
        schema.sdl() == read("schema.graphql"),
        "the schema these documents are checked against is schema.graphql"
    );
    let mut checked = 0;
    let mut problems = Vec::new();
    for path in k6_scripts() {
        let js = std::fs::read_to_string(&path).unwrap();
        checked += js_strings(&js)
            .iter()
            .filter(|text| is_operation(text))
            .count();
        for (document, errors) in invalid_documents(&schema, &js).await {
            problems.push(format!(
                "{}:\n{document}\n  {}",
                path.display(),
                errors.join("\n  ")
            ));
        }
    }
    // Every document operations.js exports is among those found (a check on the scanner).
    let operations = read("k6-graphql/lib/operations.js");
    let exported = operations
        .lines()
        .filter(|line| line.starts_with("export const ") && line.contains(" = "))
        .filter(|line| {
            let value = line.split_once(" = ").unwrap().1;
            is_operation(value.trim_start_matches(['`', '\'', '"']))
        })
        .count();
    let found = js_strings(&operations)
        .iter()
        .filter(|text| is_operation(text))
        .count();
    assert_eq!(found, exported, "the scanner finds every exported document");
    assert!(checked >= 10, "only {checked} documents found");
    assert!(
        problems.is_empty(),
        "k6 sends documents the schema rejects:\n{}",
        problems.join("\n")
    );
}

#[tokio::test]
async fn an_unknown_field_or_operation_in_a_script_is_caught() {
    let schema = ValidatingSchema::new();
    let script = r#"
        // A comment with a 'quote' and a `tick`, and a regex with a quote: /'/.
        const pattern = /^"(\d+)"$/;
        export const GOOD = `query me { me { id points } }`;
        export const FIELD = `mutation pay($r: ID!, $k: String!) {
          pay(reservationId: $r, idempotencyKey: $k) { amount refundedAt }
        }`;
        const OPERATION = 'mutation { refund(reservationId: "1") { amount } }';
        const ARGUMENT = "query schedule($id: ID!) { schedule(scheduleId: $id) { id } }";
        const BUILT = `query { concert(id: ${id}) { id } }`;
        const NOT_GRAPHQL = ['querying is fun', `subscription error: ${code}`];
    "#;
    let invalid = invalid_documents(&schema, script).await;
    let invalid: Vec<&str> = invalid
        .iter()
        .map(|(document, _)| document.split_whitespace().take(2).last().unwrap())
        .collect();
    assert_eq!(
        invalid,
        ["pay($r:", "{", "schedule($id:", "{"],
        "an unknown field, an unknown operation, an unknown argument and a built document"
    );
}
