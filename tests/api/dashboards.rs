//! The provisioned Grafana dashboards (`grafana/dashboards/*.json`): well-formed for Grafana's file
//! provisioning, wired to the provisioned Prometheus datasource and to the folder docker-compose
//! mounts, and every metric a panel queries is one the real server exports at `/metrics`. Metrics
//! named `k6_*` are pushed by k6 itself (remote write), not by the server, and are the one
//! exception. The alert rules (`grafana/alerts.yml`) are held to the same standard (plus
//! Prometheus' own `up`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::helpers::TestApp;
use crate::helpers::files::{read, root};
use serde_json::{Value, json};

/// Metrics the server does not export: k6 pushes them to Prometheus (`-o experimental-prometheus-rw`).
const EXTERNAL_PREFIXES: &[&str] = &["k6_"];

/// Series Prometheus makes itself, which alert rules may use.
const PROMETHEUS_OWN: &[&str] = &["up"];

/// PromQL words that are not metric names: aggregation operators, set and comparison keywords,
/// modifiers and literals. Functions are recognised by the `(` that follows them.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "and",
    "or",
    "unless",
    "atan2",
    "bool",
    "offset",
    "inf",
    "nan",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

// ---------------------------------------------------------------------------------------------
// Reading the project's files

/// Every `grafana/dashboards/*.json`, parsed, by file name.
fn dashboards() -> BTreeMap<String, Value> {
    let dir = root().join("grafana/dashboards");
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display())) {
        let path = entry.expect("a readable directory entry").path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let name = path
                .file_name()
                .expect("a file has a name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path).expect("a readable dashboard");
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|err| panic!("{name} is not valid JSON: {err}"));
            found.insert(name, json);
        }
    }
    assert!(!found.is_empty(), "no dashboards in {}", dir.display());
    found
}

/// The values of `key:` in a YAML file, read line by line (enough for our small, flat files).
fn yaml_values(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split(" #").next().unwrap_or_default().trim())
        .map(|line| line.strip_prefix("- ").unwrap_or(line))
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .map(|value| value.trim().trim_matches('"').trim_matches('\'').to_owned())
        .collect()
}

/// The uid dashboards must use: the one the datasource provisioning gives Prometheus.
fn provisioned_datasource_uid() -> String {
    let datasources = read("grafana/provisioning/datasources/prometheus.yml");
    assert_eq!(
        yaml_values(&datasources, "type"),
        ["prometheus"],
        "one Prometheus datasource"
    );
    let uids = yaml_values(&datasources, "uid");
    assert_eq!(uids.len(), 1, "the datasource has a fixed uid: {uids:?}");
    uids[0].clone()
}

// ---------------------------------------------------------------------------------------------
// Walking a dashboard

/// Every panel, those nested in collapsed rows included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Every PromQL expression a dashboard runs, with where it is: panel targets and the
/// `label_values(<selector>, <label>)` queries of template variables (the selector part).
fn expressions(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push((
                    format!("panel {:?}", panel["title"].as_str().unwrap_or_default()),
                    expr.to_owned(),
                ));
            }
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let query = variable["query"]["query"]
            .as_str()
            .or_else(|| variable["query"].as_str())
            .unwrap_or_default();
        if let Some(args) = query
            .strip_prefix("label_values(")
            .and_then(|rest| rest.strip_suffix(')'))
        {
            let selector = args.rsplit_once(',').map_or(args, |(selector, _)| selector);
            out.push((
                format!(
                    "variable {:?}",
                    variable["name"].as_str().unwrap_or_default()
                ),
                selector.to_owned(),
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// PromQL

/// The metric names a PromQL expression selects: its identifiers, minus functions (followed by
/// `(`), keywords, label names (inside `{...}` and `by (...)`-like lists), strings, numbers,
/// durations and ranges (`[5m]`, `[$__rate_interval]`) and Grafana variables (`$x`, `${x}`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let is_ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let next_non_space = |from: usize| chars[from..].iter().copied().find(|c| !c.is_whitespace());
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '{' || c == '[' {
            i = skip_balanced(&chars, i);
        } else if c == '$' {
            i += 1;
            if chars.get(i) == Some(&'{') {
                i = skip_balanced(&chars, i);
            } else {
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() || c == '.' {
            // A number or a duration (0.95, 1e3, 5m, 1h30m).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let lower = word.to_ascii_lowercase();
            let calls = next_non_space(i) == Some('(');
            if LABEL_LIST_KEYWORDS.contains(&lower.as_str()) {
                if calls {
                    let open = i + chars[i..].iter().position(|&c| c == '(').unwrap_or(0);
                    i = skip_balanced(&chars, open);
                }
            } else if !calls && !KEYWORDS.contains(&lower.as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The index after the string literal starting at `start` (backslash escapes honoured).
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// The index after the bracket opened at `start` and its match; strings inside are skipped.
fn skip_balanced(chars: &[char], start: usize) -> usize {
    let (open, close) = match chars[start] {
        '{' => ('{', '}'),
        '[' => ('[', ']'),
        _ => ('(', ')'),
    };
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = skip_string(chars, i);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// The sample names in a Prometheus text exposition (histograms as `_bucket`, `_sum`, `_count`).
fn exported_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// `(where, metric)` for every metric the dashboards query that `exported` lacks, external
/// prefixes aside.
fn missing_metrics(
    dashboards: &BTreeMap<String, Value>,
    exported: &BTreeSet<String>,
) -> Vec<(String, String)> {
    let mut missing = Vec::new();
    for (file, dashboard) in dashboards {
        for (place, expr) in expressions(dashboard) {
            for name in metric_names(&expr) {
                let external = EXTERNAL_PREFIXES
                    .iter()
                    .any(|prefix| name.starts_with(prefix));
                if !external && !exported.contains(&name) {
                    missing.push((format!("{file} {place}: {expr}"), name));
                }
            }
        }
    }
    missing
}

/// `(alert, expr)` of every rule in `grafana/alerts.yml`; each rule has a severity P0 to P3 and a
/// runbook in docs/incident-response.md.
fn alert_expressions() -> Vec<(String, String)> {
    let docs = yaml_rust2::YamlLoader::load_from_str(&read("grafana/alerts.yml"))
        .expect("grafana/alerts.yml is YAML");
    let mut rules = Vec::new();
    for group in docs[0]["groups"].as_vec().expect("alerts.yml has groups") {
        for rule in group["rules"].as_vec().expect("every group has rules") {
            let name = rule["alert"].as_str().expect("every rule is an alert");
            let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
            assert!(
                ["P0", "P1", "P2", "P3"].contains(&severity),
                "{name}: severity {severity:?} is not P0..P3"
            );
            let runbook = rule["annotations"]["runbook"].as_str().unwrap_or_default();
            assert!(
                runbook.starts_with("docs/incident-response.md#"),
                "{name}: runbook {runbook:?}"
            );
            let expr = rule["expr"].as_str().expect("every rule has an expr");
            rules.push((format!("alert {name}"), expr.to_owned()));
        }
    }
    rules
}

/// `(where, metric)` for every metric the alert rules use that `exported` lacks.
fn missing_in_alerts(exported: &BTreeSet<String>) -> Vec<(String, String)> {
    let mut missing = Vec::new();
    for (place, expr) in alert_expressions() {
        for name in metric_names(&expr) {
            if !PROMETHEUS_OWN.contains(&name.as_str()) && !exported.contains(&name) {
                missing.push((format!("grafana/alerts.yml {place}: {expr}"), name));
            }
        }
    }
    missing
}

// ---------------------------------------------------------------------------------------------
// The extractor itself

#[test]
fn the_extractor_finds_metric_names_and_nothing_else() {
    let expr = r#"histogram_quantile(0.99, sum by (le, operation) (rate(graphql_request_duration_seconds_bucket{operation=~"$operation", code!="a{b}"}[$__rate_interval])))
        / on(instance) group_left sum without (job) (no_such_metric_total offset 5m) > bool 1e3
        or label_replace(vector(0), "dst", "$1", "src", "(.*)") unless ${bare} + time() - process_start_time_seconds[5m:1m]
        and sum(rate(k6_http_reqs_total[1h30m])) by (name)"#;
    assert_eq!(
        metric_names(expr),
        BTreeSet::from(
            [
                "graphql_request_duration_seconds_bucket",
                "no_such_metric_total",
                "process_start_time_seconds",
                "k6_http_reqs_total",
            ]
            .map(str::to_owned)
        )
    );
}

#[test]
fn a_dashboard_naming_a_metric_the_server_lacks_is_caught() {
    let exposition = "# TYPE graphql_requests_total counter\n\
        graphql_requests_total{operation=\"concerts\",outcome=\"ok\"} 3\n\
        graphql_request_duration_seconds_bucket{operation=\"concerts\",le=\"0.1\"} 3\n";
    let exported = exported_names(exposition);
    let dashboard = json!({
        "panels": [{
            "targets": [
                { "expr": "sum(rate(graphql_requests_total[5m])) / sum(rate(graphql_requests_totl[5m]))" },
                { "expr": "histogram_quantile(0.95, sum by (le) (rate(graphql_request_duration_seconds_bucket[5m])))" },
                { "expr": "rate(graphql_request_duration_seconds[5m])" },
                { "expr": "sum(k6_vus)" },
            ]
        }],
        "templating": { "list": [{ "name": "concert", "query": { "query": "label_values(queue_waiting, concert)" } }] }
    });
    let dashboards = BTreeMap::from([("bogus.json".to_owned(), dashboard)]);

    let missing: Vec<String> = missing_metrics(&dashboards, &exported)
        .into_iter()
        .map(|(_, name)| name)
        .collect();

    // A typo, a histogram's bare name (only _bucket/_sum/_count exist) and a variable's metric.
    assert_eq!(
        missing,
        [
            "graphql_requests_totl",
            "graphql_request_duration_seconds",
            "queue_waiting"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Structure and provisioning

#[test]
fn dashboards_are_well_formed_and_use_the_provisioned_datasource() {
    let datasource_uid = provisioned_datasource_uid();
    let mut uids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for (file, dashboard) in dashboards() {
        let uid = dashboard["uid"].as_str().unwrap_or_default();
        assert!(
            !uid.is_empty() && uid.len() <= 40,
            "{file}: a uid of 1 to 40 characters"
        );
        assert!(uids.insert(uid.to_owned()), "{file}: uid {uid} is taken");
        let title = dashboard["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "{file}: a title");
        // Grafana refuses two dashboards of one title in one folder.
        assert!(
            titles.insert(title.to_owned()),
            "{file}: title {title} is taken"
        );
        assert!(
            dashboard["id"].is_null(),
            "{file}: no numeric id (Grafana assigns it)"
        );
        assert!(
            dashboard["schemaVersion"].is_u64(),
            "{file}: a schemaVersion"
        );
        let all = panels(&dashboard);
        assert!(
            all.iter().any(|panel| panel["type"] != "row"),
            "{file}: panels"
        );

        let mut ids = BTreeSet::new();
        for panel in all {
            let title = &panel["title"];
            assert!(
                ids.insert(panel["id"].as_u64().expect("a numeric panel id")),
                "{file}: panel id of {title} is taken"
            );
            let grid = &panel["gridPos"];
            let [h, w, x, _y] = ["h", "w", "x", "y"].map(|key| {
                grid[key]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{file}: {title} has gridPos.{key}"))
            });
            assert!(
                h > 0 && w > 0 && x + w <= 24,
                "{file}: {title} fits 24 columns: {grid}"
            );
            if panel["type"] == "row" {
                continue;
            }
            assert_eq!(
                panel["datasource"]["uid"], datasource_uid,
                "{file}: {title} queries the provisioned datasource"
            );
            let targets = panel["targets"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            assert!(!targets.is_empty(), "{file}: {title} has targets");
            for target in targets {
                assert!(
                    target["expr"]
                        .as_str()
                        .is_some_and(|expr| !expr.trim().is_empty()),
                    "{file}: {title} has a target without expr: {target}"
                );
                if !target["datasource"].is_null() {
                    assert_eq!(
                        target["datasource"]["uid"], datasource_uid,
                        "{file}: {title}"
                    );
                }
            }
        }
        for variable in dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if variable["type"] == "query" {
                assert_eq!(
                    variable["datasource"]["uid"], datasource_uid,
                    "{file}: variable {}",
                    variable["name"]
                );
            }
        }
    }
}

#[test]
fn grafana_provisions_the_folder_docker_compose_mounts() {
    let compose = read("docker-compose.yml");
    let mounts: BTreeMap<String, String> = compose
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- ./"))
        .filter_map(|volume| {
            let mut parts = volume.trim_matches('"').split(':');
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect();
    let mounted = |source: &str| {
        mounts
            .get(source)
            .unwrap_or_else(|| panic!("docker-compose.yml mounts ./{source}: {mounts:?}"))
            .as_str()
    };

    let providers = read("grafana/provisioning/dashboards/dashboards.yml");
    assert_eq!(
        yaml_values(&providers, "path"),
        [mounted("grafana/dashboards")],
        "the dashboard provider reads the folder docker-compose mounts ./grafana/dashboards at"
    );
    assert_eq!(mounted("grafana/provisioning"), "/etc/grafana/provisioning");
    for home in yaml_values(&compose, "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH") {
        let file = home
            .strip_prefix(&format!("{}/", mounted("grafana/dashboards")))
            .unwrap_or_else(|| panic!("the home dashboard {home} is in the mounted folder"));
        assert!(
            root().join("grafana/dashboards").join(file).exists(),
            "the home dashboard {file} exists"
        );
    }
    assert!(
        root()
            .join("grafana/provisioning/datasources/prometheus.yml")
            .exists()
    );

    // Prometheus reads our configuration, scrapes the app's service and accepts k6's pushes.
    let prometheus_config = mounted("grafana/prometheus.yml");
    assert!(
        compose.contains(&format!("--config.file={prometheus_config}")),
        "Prometheus runs with the mounted configuration"
    );
    assert!(compose.contains("--web.enable-remote-write-receiver"));
    let scrape = read("grafana/prometheus.yml");
    assert!(scrape.contains("app:8080"), "Prometheus scrapes the app");
    assert!(
        yaml_values(
            &read("grafana/provisioning/datasources/prometheus.yml"),
            "url"
        )
        .iter()
        .any(|url| url == "http://prometheus:9090"),
        "Grafana's datasource is the compose service `prometheus`"
    );
}

// ---------------------------------------------------------------------------------------------
// Against the real server

/// Every family the server records without labels is at `/metrics` from the start, at zero, and
/// so are the process metrics.
#[tokio::test(flavor = "multi_thread")]
async fn label_free_and_process_metrics_exist_before_any_event() {
    let app = TestApp::spawn().await;
    let exported = exported_names(&app.get("/metrics").await.text().await.unwrap());
    for name in [
        "consumer_lag",
        "outbox_backlog",
        "outbox_publish_failures_total",
        "expiry_release_latency_seconds_bucket",
        "payment_duration_seconds_count",
        "queue_tick_failures_total",
        "queue_admitter_failing",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_threads",
    ] {
        assert!(exported.contains(name), "{name} missing from {exported:?}");
    }
}

/// Drives one of each event the dashboards chart (GraphQL success and error, queue entry and
/// admission, hold, payment, cancellation, top-up, expiry and release), then checks that every
/// metric every dashboard queries is exported.
#[tokio::test(flavor = "multi_thread")]
async fn every_metric_a_dashboard_queries_is_exported() {
    // Holds last a second, so one can run out; a payment or cancellation that finds its hold
    // expired still records its metrics, which is all this test needs of them.
    let (app, fans) = TestApp::staged(4, 2, 1_000_000, |config| {
        config.hold_ttl_seconds = 1;
    })
    .await;
    let as_fan = |user: i64| app.headers_of(&fans[user as usize - 1]);
    let ok = |body: &Value| assert!(body.get("errors").is_none(), "{body}");

    ok(&app.graphql("{ concerts { id } }").await);
    assert!(
        app.graphql("{ concerts { nope } }")
            .await
            .get("errors")
            .is_some()
    );
    let held = app
        .graphql_with_headers(
            r#"mutation { holdSeats(scheduleId: "1", seatIds: ["1", "2"]) { id } }"#,
            json!({}),
            &as_fan(1),
        )
        .await;
    ok(&held);
    let reservation = held["data"]["holdSeats"]["id"].clone();
    app.graphql_with_headers(
        r#"mutation($r: ID!) { pay(reservationId: $r, idempotencyKey: "dash-1") { amount } }"#,
        json!({ "r": reservation }),
        &as_fan(1),
    )
    .await;
    app.graphql_as(
        1,
        "mutation($r: ID!) { cancelReservation(reservationId: $r) { status } }",
        json!({ "r": reservation }),
    )
    .await;
    ok(&app
        .graphql_as(
            1,
            r#"mutation { chargePoints(amount: 100, idempotencyKey: "dash-2") { balance } }"#,
            json!({}),
        )
        .await);
    // A hold that runs out: the sweeper expires it, the consumer's handler releases its seat.
    let held = app
        .graphql_with_headers(
            r#"mutation { holdSeats(scheduleId: "1", seatIds: ["3"]) { id } }"#,
            json!({}),
            &as_fan(2),
        )
        .await;
    ok(&held);
    let expiring = held["data"]["holdSeats"]["id"]
        .as_str()
        .expect("an ID is a string")
        .to_owned();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (expired, _) = app.sweep_expired_holds().await;
    assert!(expired >= 1);
    let event = app
        .expired_events_in_outbox()
        .await
        .into_iter()
        .find(|event| event.reservation_id.to_string() == expiring)
        .expect("the sweeper wrote a seats.expired event");
    assert_eq!(app.release_expired(&event).await, 1);

    let exposition = app.get("/metrics").await.text().await.unwrap();
    let exported = exported_names(&exposition);
    let mut missing = missing_metrics(&dashboards(), &exported);
    missing.extend(missing_in_alerts(&exported));

    assert!(
        missing.is_empty(),
        "dashboards or alert rules query metrics the server does not export:\n{}\n--- /metrics ---\n{exposition}",
        missing
            .iter()
            .map(|(place, name)| format!("  {name}  ({place})"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
