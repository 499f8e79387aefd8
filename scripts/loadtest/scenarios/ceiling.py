"""This machine's ceilings and the cost of each hot operation, S seconds each, one part after the
other: k6 on /healthz, a trivial GraphQL query, the cached 50-seat seat map, queueStatus, API holds
(holdBestAvailable(count: 1)) and payments of holds made through the API in a prepare phase; per
part, throughput, latency, CPU ms per request of the server, PostgreSQL, Redis and k6 (the 1 s
samples inside the part's window, its edges trimmed) and SQL statements and pool checkouts per
request (the server's own counters over the same window). pgbench on the hold statement
(k6-graphql/tools/hold.pgbench.sql) in two variants: rollback (no commit flush: an upper bound)
and commit (then the seat given back: a lower bound), and on the payment statement
(k6-graphql/tools/pay.pgbench.sql), rolled back (an upper bound).
Env: CEILING_VUS (32), HOLD_VUS (16), PAY_VUS (16), PAY_HOLDS (holds prepared for the pay part:
--duration x 1,500; x 300 in a smoke run), PGBENCH_CLIENTS (16), PGBENCH_JOBS (2)."""

import json
import os
import re
import shutil
import subprocess

from loadtest.fmt import ms, n0, num, pass_fail, pct
from loadtest.report import Report, Table, resources_of
from loadtest.scenarios.base import Scenario, queue_settings, section
from loadtest.scenarios.payments import prepared_holds
from loadtest.util import (PROJECT_ROOT, RESULTS_DIR, Fatal, duration_seconds, env_int, positive_int, read_json, read_text,
                           rel, say, utc_now, write_json)

SEATS = 50        # seats per schedule: the seat map part reads one schedule's 50 seats
HOLD_FANS = SEATS  # fans the holds part cycles through: one seat each per schedule
GAP = 3           # seconds between two parts (ceiling.js)
HOLD_RATE_CAP = 3000  # holds/s the seed leaves room for in the holds part
# The parts in the order ceiling.js runs them: (k6 part, name in results.operations, label,
# the k6 counter of its successful requests or None: requests minus failures).
PARTS = (("healthz", "healthz", "k6 → GET /healthz", None),
         ("typename", "typename", "k6 → POST /graphql `{ __typename }`", None),
         ("seatmap", "seat_map", "k6 → cached 50-seat seat map (`schedule { seats }`)", None),
         ("queueStatus", "queue_status", "k6 → `queueStatus` (an ACTIVE token)", None),
         ("holds", "hold_best_available", "k6 → holdBestAvailable (API)", "ceiling_holds_ok"),
         ("pay", "pay", "k6 → pay (API, holds prepared before)", "ceiling_pay_ok"))
NAMES = {p: label for p, _, label, _ in PARTS}
PROCESSES = (("server", "server_cpu"), ("postgres", "pg_cpu"), ("redis", "redis_cpu"), ("k6", "k6_cpu"))
RATIOS = (("GraphQL `{ __typename }` req/s ÷ /healthz req/s", "typename", "healthz",
           "what the GraphQL engine and its extensions cost on top of HTTP"),
          ("API holds/s ÷ pgbench holds/s (commit + give back)", "api_holds", "pgbench_commit",
           "HTTP, GraphQL, JWT, queue check in Redis, pool, seat-map invalidation around the same SQL"),
          ("API holds/s ÷ pgbench holds/s (rolled back)", "api_holds", "pgbench_rollback",
           "the same against the no-commit upper bound"),
          ("API payments/s ÷ pgbench payments/s (rolled back)", "api_payments", "pgbench_pay_rollback",
           "HTTP, GraphQL, JWT, queue check and end in Redis, pool, seat-map update and the commit around the same SQL"))
# Issue 11's targets per operation: (operation, what, key in its row, limit).
TARGETS = (("hold_best_available", "SQL statements per hold (net of background, to 0.1)", "statements_per_op_net", 3),
           ("hold_best_available", "pool checkouts per hold (net of background, to 0.1)", "checkouts_per_op_net", 1),
           ("hold_best_available", "PostgreSQL CPU ms per hold", ("cpu_ms_per_req", "postgres"), 0.6),
           ("hold_best_available", "server CPU ms per hold", ("cpu_ms_per_req", "server"), 0.35),
           ("pay", "SQL statements per payment (net of background, to 0.1)", "statements_per_op_net", 4),
           ("pay", "pool checkouts per payment (net of background, to 0.1)", "checkouts_per_op_net", 1),
           ("pay", "PostgreSQL CPU ms per payment", ("cpu_ms_per_req", "postgres"), 0.8),
           ("seat_map", "server CPU ms per cached seat map", ("cpu_ms_per_req", "server"), 0.2),
           ("queue_status", "server CPU ms per queueStatus", ("cpu_ms_per_req", "server"), 0.1))


class Ceiling(Scenario):
    name = "ceiling"
    title = "Ceilings of this machine"
    script = "k6-graphql/ceiling.js"
    takes = ("duration",)
    has_prepare = True

    def configure(self):
        self.secs = positive_int("--duration", duration_seconds(self.opts.get("duration") or 15))
        hold_vus, self.clients = env_int("HOLD_VUS", 16), env_int("PGBENCH_CLIENTS", 16)
        if not shutil.which("pgbench"):
            raise Fatal("pgbench is needed (it comes with the PostgreSQL client packages)")
        smoke = os.environ.get("SMOKE") == "1"
        self.pay_holds = env_int("PAY_HOLDS", self.secs * (300 if smoke else 1500))
        # Concert 1: the holds part's schedules (fan i on schedule j, a pair used once, for up to
        # HOLD_RATE_CAP holds/s), the seat map's (schedule 1) and pgbench's holds. Concert 2: the
        # holds the pay part pays, one seat each of its schedules, in order, and on its last
        # schedules one hold for each pgbench client (the payment statement's variant).
        self.schedules = -(-max(self.secs * HOLD_RATE_CAP, self.pay_holds) // SEATS) + -(-self.clients // SEATS)
        self.k6_env = {"SECONDS_EACH": self.secs, "VUS": os.environ.get("CEILING_VUS") or 32, "HOLD_VUS": hold_vus,
                       "PAY_VUS": env_int("PAY_VUS", 16), "HOLD_FANS": HOLD_FANS, "SCHEDULES": self.schedules,
                       "SEATS_PER_SCHEDULE": SEATS, "CONCERT_ID": 1, "PAY_CONCERT_ID": 2, "SEAT_MAP_SCHEDULE": 1,
                       "PAY_HOLDS": self.pay_holds, "PGBENCH_CLIENTS": self.clients, "RUN_ID": self.stamp}
        self.seed_args = ["--concerts", "2", "--schedules-per-concert", str(self.schedules), "--seats-per-schedule", str(SEATS),
                          "--users", str(max(HOLD_FANS + self.pay_holds, self.clients)), "--points", "1000000"]
        # Every pay fan ACTIVE in concert 2 at once; tokens and holds outlive the whole run.
        self.server_env = queue_settings(100000, self.pay_holds + HOLD_FANS + 1000, 120, 3600, HOLD_TTL_SECONDS=3600)

    def prepare(self, run):
        """pgbench on the hold statement (two variants) and on the payment statement, each for
        --duration; then the pay part's holds through the API (k6 PHASE=prepare), collected into
        prepared.json."""
        bad = run.db.value("select count(*) from seats s join schedules sc on sc.id = s.schedule_id "
                           "where s.id <> (s.schedule_id - 1) * %s + s.number "
                           "or sc.concert_id <> case when s.schedule_id <= %s then 1 else 2 end", (SEATS, self.schedules))
        if bad:
            raise Fatal(f"seeded seats do not follow (schedule - 1) x {SEATS} + number in concerts of {self.schedules} "
                        f"schedules ({bad} rows): ceiling.js cannot address them")
        for variant in ("rollback", "commit"):
            self.pgbench(run, variant)
        # One hold for each pgbench client (fan c + 1) on the last schedules of concert 2.
        run.db.value("select count(hold_seats(u, %s - (u - 1) / %s, NULL, 1, 86400000, NULL)) from generate_series(1, %s) u",
                     (2 * self.schedules, SEATS, self.clients))
        self.pgbench(run, "pay-rollback")
        say(f"prepare: {self.pay_holds} holds through the API for the pay part (log: {rel(run.out_dir / 'prepare-k6.log')})")
        started = utc_now()
        seconds, rc = run.run_phase("prepare")
        rows = prepared_holds(run.out_dir / "prepare-console.log")
        (run.out_dir / "prepared.json").write_text(json.dumps(rows, separators=(",", ":")))
        write_json(run.out_dir / "prepare.json", {"seconds": seconds, "holds": len(rows), "wanted": self.pay_holds,
                                                  "k6_exit": rc, "started": started})
        say(f"prepare: {len(rows)} of {self.pay_holds} holds in {seconds}s")
        if not rows:
            raise Fatal(f"no hold was prepared; see {rel(run.out_dir / 'prepare-k6.log')}")
        self.k6_env["PREPARED"] = str(run.out_dir / "prepared.json")

    def pgbench(self, run, variant):
        """pgbench for --duration on the hold statement (variant rollback or commit) or the payment
        statement (pay-rollback); pgbench-<variant>.{sql,log}."""
        what = "payment" if variant.startswith("pay") else "hold"
        say(f"pgbench: the {what} statement ({variant}), {self.clients} clients, {self.secs}s")
        template = read_text(PROJECT_ROOT / "k6-graphql" / "tools" / f"{what.replace('payment', 'pay')}.pgbench.sql")
        script = re.sub(rf"(?m)^-- @{variant}@ ", "", template)
        (run.out_dir / f"pgbench-{variant}.sql").write_text(script)
        log = run.out_dir / f"pgbench-{variant}.log"
        with open(log, "wb") as f:
            rc = subprocess.call(["pgbench", "-n", "-f", str(run.out_dir / f"pgbench-{variant}.sql"), "-c", str(self.clients),
                                  "-j", os.environ.get("PGBENCH_JOBS") or "2", "-T", str(self.secs), "-P", "1",
                                  "-D", f"nschedules={self.schedules}", "-D", "concert=2", "-D", f"last_schedule={2 * self.schedules}",
                                  run.db.url], stdout=f, stderr=subprocess.STDOUT)
        if rc != 0:
            print("\n".join(read_text(log).splitlines()[-20:]))
            raise Fatal(f"pgbench ({variant}) failed")

    def report(self, ctx):
        s = ctx.summary
        secs_each = ctx.env_int("SECONDS_EACH", 15)
        parts = part_results(s, secs_each)
        failed = {"healthz": s.get("http_req_failed{part:healthz}", "value")}
        failed.update({p: s.get(f"graphql_failed{{part:{p}}}", "value") for p, _, _, _ in PARTS[1:]})
        pg = {v: pgbench_result(read_text(ctx.run_dir / f"pgbench-{v}.log")) for v in ("rollback", "commit")}
        pg["pay_rollback"] = pgbench_result(read_text(ctx.run_dir / "pgbench-pay-rollback.log"))
        ceilings = {"healthz": parts["healthz"]["per_s"], "typename": parts["typename"]["per_s"], "api_holds": parts["holds"]["ok_per_s"],
                    "pgbench_rollback": pg["rollback"]["tps"], "pgbench_commit": pg["commit"]["tps"],
                    "seat_map": parts["seatmap"]["ok_per_s"], "queue_status": parts["queueStatus"]["ok_per_s"],
                    "api_payments": parts["pay"]["ok_per_s"], "pgbench_pay_rollback": pg["pay_rollback"]["tps"]}
        ratios = [{"ratio": label, "value": ratio(ceilings[a], ceilings[b])} for label, a, b, _ in RATIOS]
        committed = [] if ctx.smoke else committed_results(ceilings)
        windows = part_windows(ctx, secs_each)
        background = background_rates(ctx, windows.get("healthz"))
        operations = {op: operation_row(ctx, parts[p], windows.get(p), p != "healthz", background) for p, op, _, _ in PARTS}
        targets = target_rows(operations, ctx.smoke)
        no_hold = s.count("ceiling_pay_no_hold_left")
        prep = read_json(ctx.run_dir / "prepare.json", {}) or {}
        res = resources_of(ctx.samples)
        chart = cpu_chart(ctx, operations)
        return Report(
            title=self.title, judge_plan=False, resources=res, resources_window="over the k6 parts",
            goals=goals(failed, pg, no_hold, s.count("ceiling_schedules_exhausted"), ctx.smoke),
            load_model=(f"each part {secs_each} s, one after the other, closed model: /healthz, `{{ __typename }}`, the seat map "
                        f"and `queueStatus` with {ctx.k6_env.get('VUS')} VUs, API holds with {ctx.k6_env.get('HOLD_VUS')} VUs, "
                        f"payments with {ctx.k6_env.get('PAY_VUS')} VUs ({n0(prep.get('holds'))} holds prepared through the API "
                        f"before); before them pgbench with {ctx.k6_env.get('PGBENCH_CLIENTS', '?')} clients for {secs_each} s "
                        f"per variant"),
            headline=(f"/healthz {n0(ceilings['healthz'])} req/s, GraphQL `{{ __typename }}` {n0(ceilings['typename'])} req/s, seat map "
                      f"{n0(ceilings['seat_map'])} req/s, `queueStatus` {n0(ceilings['queue_status'])} req/s, API holds "
                      f"{n0(ceilings['api_holds'])}/s, payments {n0(ceilings['api_payments'])}/s; pgbench on the hold statement "
                      f"{n0(ceilings['pgbench_commit'])} tps committed ({n0(ceilings['pgbench_rollback'])} tps rolled back), on the "
                      f"payment statement {n0(ceilings['pgbench_pay_rollback'])} tps rolled back."),
            data={"load_model": {"seconds_each": secs_each, "vus": ctx.k6_env.get("VUS"), "hold_vus": ctx.k6_env.get("HOLD_VUS"),
                                 "pay_vus": ctx.k6_env.get("PAY_VUS"), "pay_holds_wanted": ctx.env_int("PAY_HOLDS", 0)},
                  "prepare": prep,
                  "results": {"ceilings": ceilings, "parts": parts, "failed": failed, "pgbench": pg, "ratios": ratios,
                              "committed_results": committed, "operations": operations, "windows": windows,
                              "background": background, "targets": targets, "pay_no_hold_left": no_hold}, "resources": res},
            sections=[section("Results", ceiling_table(parts, pg), ratio_table(ratios), committed_table(committed, ceilings)),
                      section("Per operation", operations_table(operations, background), target_table(targets), chart)])


def part_results(s, secs_each):
    """Per k6 part: requests, req/s, successful req/s (ok_per_s) and latency."""
    parts = {}
    for p, _, _, ok_counter in PARTS:
        n = s.count(f"http_reqs{{part:{p}}}")
        failed = s.rate_counts("http_req_failed{part:healthz}" if p == "healthz" else f"graphql_failed{{part:{p}}}")[0]
        ok = s.count(ok_counter) if ok_counter else max(0, n - failed)
        parts[p] = {"requests": n, "per_s": n / secs_each, "ok_per_s": ok / secs_each,
                    "latency_ms": s.latency(f"http_req_duration{{part:{p}}}")}
    return parts


def k6_t0_ms(k6_log):
    """When the parts' clock started (epoch ms), as ceiling.js's setup() logged it."""
    m = re.search(r"CEILING_T0 (\d+)", k6_log)
    return int(m.group(1)) if m else None


def part_windows(ctx, secs_each):
    """Each part's window in the sampler's seconds (samples.tsv `t`), trimmed of its first and
    last second (a fifth of the part when shorter): {part: {"from_s", "to_s"}}."""
    t0 = k6_t0_ms(read_text(ctx.run_dir / "k6.log"))
    offsets = [s["unix"] - s["t"] for s in ctx.series if s.get("unix") is not None]
    if t0 is None or not offsets:
        return {}
    start = t0 / 1000 - min(offsets)
    trim = min(1.0, secs_each / 5)
    return {p: {"from_s": round(start + i * (secs_each + GAP) + trim, 3), "to_s": round(start + i * (secs_each + GAP) + secs_each - trim, 3)}
            for i, (p, _, _, _) in enumerate(PARTS)}


def cpu_ms(rows, key, a, b):
    """CPU ms of one process (samples' `key`, % of one core over the interval each row ends)
    within [a, b] seconds; rows partly inside count by their overlap. (ms, seconds covered)."""
    total = covered = 0.0
    for prev, row in zip(rows, rows[1:]):
        lo, hi = max(prev["t"], a), min(row["t"], b)
        if hi > lo and row.get(key) is not None:
            total += row[key] / 100 * (hi - lo) * 1000
            covered += hi - lo
    return total, covered


def value_at(series, key, x):
    """A counter of the /metrics series at x seconds, interpolated between two scrapes."""
    pts = [(s["t"], s[key]) for s in series if s.get(key) is not None]
    for (t1, v1), (t2, v2) in zip(pts, pts[1:]):
        if t1 <= x <= t2:
            return v1 + (v2 - v1) * (x - t1) / (t2 - t1) if t2 > t1 else v1
    return None


def delta(series, key, a, b):
    va, vb = value_at(series, key, a), value_at(series, key, b)
    return vb - va if va is not None and vb is not None else None


def errors_delta(series, a, b):
    def total(s):
        return sum((s.get("errors_by_code") or {}).values())
    return delta([{"t": s["t"], "errors": total(s)} for s in series], "errors", a, b)


def per(v, n):
    return v / n if v is not None and n else None


def background_rates(ctx, window):
    """Statements and pool checkouts per second with no request touching the database (the
    /healthz part: the outbox relay, the expiry sweeper)."""
    if not window:
        return {"statements_per_s": None, "checkouts_per_s": None}
    a, b = window["from_s"], window["to_s"]
    return {"statements_per_s": per(delta(ctx.series, "db_statements", a, b), b - a),
            "checkouts_per_s": per(delta(ctx.series, "db_checkouts", a, b), b - a)}


def net_of(total, rate, seconds, n):
    """Per request, once `rate` x `seconds` of background work is taken out."""
    return per(total - rate * seconds, n) if total is not None and rate is not None else None


def operation_row(ctx, part, window, graphql, background):
    """One operation's costs: throughput and latency (k6, the whole part) and, over the part's
    trimmed window, CPU ms per successful request of each process and statements and pool
    checkouts per request (the server's counters; `_net`: less the background rates). Requests in
    the window: the server's GraphQL requests minus its errors, or (/healthz) the part's rate
    times the window."""
    lat = part["latency_ms"]
    row = {"per_s": part["ok_per_s"], "p50_ms": lat.get("med"), "p95_ms": lat.get("p(95)"), "p99_ms": lat.get("p(99)"),
           "cpu_ms_per_req": {name: None for name, _ in PROCESSES}, "statements_per_op": None, "checkouts_per_op": None,
           "statements_per_op_net": None, "checkouts_per_op_net": None, "requests_in_window": None, "window_s": None}
    if not window:
        return row
    a, b = window["from_s"], window["to_s"]
    cpu = {name: cpu_ms(ctx.samples, key, a, b) for name, key in PROCESSES}
    seconds = cpu["server"][1]
    if graphql:
        got, errs = delta(ctx.series, "requests", a, b), errors_delta(ctx.series, a, b)
        n = got - (errs or 0) if got is not None else None
    else:
        n = part["ok_per_s"] * seconds
    statements, checkouts = delta(ctx.series, "db_statements", a, b), delta(ctx.series, "db_checkouts", a, b)
    row.update(requests_in_window=n, window_s=seconds,
               cpu_ms_per_req={name: per(ms_, n) for name, (ms_, _) in cpu.items()},
               statements_per_op=per(statements, n), checkouts_per_op=per(checkouts, n),
               statements_per_op_net=net_of(statements, background["statements_per_s"], b - a, n),
               checkouts_per_op_net=net_of(checkouts, background["checkouts_per_s"], b - a, n))
    return row


def target_rows(operations, smoke):
    """Issue 11's targets against this run (CPU ones not judged in a smoke run: a debug build)."""
    out = []
    for op, what, key, limit in TARGETS:
        row = operations.get(op) or {}
        value = row.get(key[0], {}).get(key[1]) if isinstance(key, tuple) else row.get(key)
        # Counts per request are whole numbers; the server's counters also hold the outbox relay's
        # work, which grows with the events each request writes: judged to one decimal.
        judged = value if isinstance(key, tuple) or value is None else round(value, 1)
        out.append({"operation": op, "what": what, "limit": limit, "value": value,
                    "passed": None if value is None or (smoke and isinstance(key, tuple)) else judged <= limit})
    return out


def goals(failed, pg, no_hold, exhausted, smoke):
    ok_parts = all((failed[p] or 0) < 0.01 for p in failed) and all(pg[v]["tps"] for v in pg)
    return [("every part ran (< 1 % failed requests, pgbench finished)", ", ".join(f"{p} {pct(failed[p], 2)}" for p in failed), ok_parts),
            ("the pay part never ran out of prepared holds (else raise PAY_HOLDS)", f"{n0(no_hold)} iterations without one",
             None if smoke else no_hold == 0),
            ("the holds part never ran out of fresh fan x schedule pairs", f"{n0(exhausted)} iterations without one", exhausted == 0)]


def ratio(a, b):
    return a / b if a and b else None


def pgbench_result(text):
    def grab(pattern, cast):
        m = re.search(pattern, text, re.M)
        return cast(m.group(1)) if m else None
    return {"tps": grab(r"^tps = ([0-9.]+)", float), "latency_ms": grab(r"^latency average = ([0-9.]+) ms", float),
            "transactions": grab(r"number of transactions actually processed: (\d+)", int),
            "failed": grab(r"number of failed transactions: (\d+)", int)}


def committed_results(ceilings):
    """The scenarios' committed results (docs/results/*.json) as a share of this run's ceilings."""
    out = []

    def add(name, what, value, vs, unit, d):
        if value:
            out.append({"scenario": name, "what": what, "value": value, "vs": vs, "unit": unit, "date": d.get("started"),
                        "commit": (d.get("source") or {}).get("commit"), "ratio": ratio(value, ceilings.get(vs))})
    for name in ("queue-wave", "seat-stampede", "payments", "mixed", "breakpoint"):
        d = read_json(RESULTS_DIR / f"{name}.json")
        if not d:
            continue
        r = d.get("results") or {}
        if name == "queue-wave" and r.get("test_duration_seconds"):
            add(name, "queue requests/s (enter + polls over the run)", sum((r.get("requests") or {}).values()) / r["test_duration_seconds"],
                "healthz", "req/s", d)
        elif name == "payments":
            add(name, "payments/s", r.get("payments_per_second"), "pgbench_commit", "tx/s", d)
            add(name, "holds/s made through the API (prepare phase)", (d.get("prepare") or {}).get("holds_per_second"), "api_holds", "holds/s", d)
        elif name == "mixed":
            add(name, "GraphQL requests/s, full journey", r.get("requests_per_second"), "typename", "req/s", d)
        elif name == "breakpoint":
            add(name, "req/s sustained by the last step that held", r.get("max_sustained_rps"), "typename", "req/s", d)
        elif name == "seat-stampede":
            from loadtest.util import seconds_between
            dur = seconds_between(d.get("started"), d.get("finished"))
            req = r.get("requests")
            add(name, "GraphQL requests/s over the run (queue, catalogue, holds)", req / dur if isinstance(req, (int, float)) and dur else None,
                "typename", "req/s", d)
    return out


def ceiling_table(parts, pg):
    rows = [[NAMES[p], f"**{n0(d['ok_per_s'] if p in ('holds', 'pay') else d['per_s'])}**/s",
             " / ".join(ms(d["latency_ms"].get(k)) for k in ("med", "p(95)", "p(99)"))] for p, d in parts.items()]
    for v, label in (("rollback", "pgbench: `SELECT hold_seats(…)`, rolled back (upper bound)"),
                     ("commit", "pgbench: `SELECT hold_seats(…)` committed, then given back (lower bound)"),
                     ("pay_rollback", "pgbench: `SELECT pay_reservation(…)`, rolled back (upper bound)")):
        rows.append([label, f"**{n0(pg[v]['tps'])}** tps", f"average {ms(pg[v]['latency_ms'])} ({n0(pg[v]['transactions'])} "
                     f"transactions, {n0(pg[v]['failed'])} failed)"])
    return Table(["ceiling", "throughput", "latency P50 / P95 / P99"], rows)


def ratio_table(ratios):
    why = {label: w for label, _, _, w in RATIOS}
    return Table(["ratio", "value", "what the gap is"], [[r["ratio"], f"{num((r['value'] or 0) * 100, 0)} %", why[r["ratio"]]] for r in ratios],
                 "Ratios measured in this run:")


def committed_table(committed, ceilings):
    rows = [[f"{c['scenario']}: {c['what']}", f"{n0(c['value'])} {c['unit']}", f"{c['vs']} {n0(ceilings.get(c['vs']))}",
             f"{num((c['ratio'] or 0) * 100, 0)} %", f"{c['date']} `{c['commit']}`"] for c in committed]
    return Table(["scenario", "measured", "ceiling", "share", "that run"], rows,
                 "The scenarios' committed results (docs/results/, each from its own run) as a share of this run's ceilings:"
                 if rows else "")


def operations_table(operations, background):
    label = {op: NAMES[p] for p, op, _, _ in PARTS}
    rows = []
    for op, r in operations.items():
        cpu = r["cpu_ms_per_req"]
        rows.append([f"`{op}` ({label[op]})", n0(r["per_s"]), " / ".join(ms(r[k]) for k in ("p50_ms", "p95_ms", "p99_ms")),
                     *(num(cpu[name], 3) for name, _ in PROCESSES),
                     f"{num(r['statements_per_op'], 2)} ({num(r['statements_per_op_net'], 2)})",
                     f"{num(r['checkouts_per_op'], 2)} ({num(r['checkouts_per_op_net'], 2)})",
                     f"{n0(r['requests_in_window'])} in {num(r['window_s'], 1)} s"])
    return Table(["operation", "req/s", "P50 / P95 / P99", "server CPU ms/req", "PostgreSQL CPU ms/req", "Redis CPU ms/req",
                  "k6 CPU ms/req", "SQL statements/req (net)", "pool checkouts/req (net)", "requests in the CPU window"], rows,
                 "Each hot operation in its own part. req/s and latency: k6 over the whole part (successful requests/s). "
                 "CPU ms per request: the 1 s /proc samples inside the part's window, its edges trimmed, divided by the "
                 "successful requests in that window; statements and checkouts: deltas of `db_statements_total` and "
                 "`db_pool_wait_seconds_count` over the same window, per request; (net): less the background rates of the "
                 f"/healthz part, when no request touches the database ({num(background['statements_per_s'], 1)} statements/s, "
                 f"{num(background['checkouts_per_s'], 1)} checkouts/s):")


def target_table(targets):
    rows = [[f"`{t['operation']}`: {t['what']}", f"≤ {t['limit']:g}", num(t["value"], 3), pass_fail(t["passed"])] for t in targets]
    return Table(["target (issue 11)", "limit", "measured", "result"], rows, "Per-operation targets:")


def cpu_chart(ctx, operations):
    """A stacked bar chart of CPU ms per request by process and operation (<out>/cpu-per-op.png),
    as a block with its image; an empty block without data."""
    ops = [op for op, r in operations.items() if any(v is not None for v in r["cpu_ms_per_req"].values())]
    if not ops:
        return Table([], [], "")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ctx.out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=90)
    bottom = [0.0] * len(ops)
    for name, _ in PROCESSES:
        vals = [operations[op]["cpu_ms_per_req"][name] or 0 for op in ops]
        ax.bar(ops, vals, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_title("CPU ms per request by process, per operation", fontsize=11)
    ax.set_ylabel("CPU ms per request")
    ax.grid(alpha=0.3, axis="y")
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = ctx.out / "cpu-per-op.png"
    fig.savefig(path)
    plt.close(fig)
    return Table([], [], f"![CPU ms per request by process, per operation]({os.path.relpath(path, ctx.out.parent)})")
