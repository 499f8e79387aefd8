"""This machine's ceilings, S seconds each: k6 on /healthz, a trivial GraphQL query and API holds;
pgbench on the raw hold transaction (k6-graphql/tools/hold.pgbench.sql) in two variants:
rollback (no commit flush: an upper bound) and commit (then the seat given back: a lower bound).
Env: CEILING_VUS (32), HOLD_VUS (16), PGBENCH_CLIENTS (16), PGBENCH_JOBS (2)."""

import os
import re
import shutil
import subprocess

from loadtest.fmt import ms, n0, num, pct
from loadtest.report import Report, Table, resources_of
from loadtest.scenarios.base import Scenario, queue_settings, section
from loadtest.util import PROJECT_ROOT, RESULTS_DIR, Fatal, duration_seconds, env_int, positive_int, read_json, read_text, say

NAMES = {"healthz": "k6 → GET /healthz", "typename": "k6 → POST /graphql `{ __typename }`", "holds": "k6 → holdBestAvailable (API)"}
RATIOS = (("GraphQL `{ __typename }` req/s ÷ /healthz req/s", "typename", "healthz",
           "what the GraphQL engine and its extensions cost on top of HTTP"),
          ("API holds/s ÷ pgbench holds/s (commit + give back)", "api_holds", "pgbench_commit",
           "HTTP, GraphQL, JWT, queue check in Redis, pool, seat-map invalidation around the same SQL"),
          ("API holds/s ÷ pgbench holds/s (rolled back)", "api_holds", "pgbench_rollback",
           "the same against the no-commit upper bound"))


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
        # Each API hold is fan i on schedule j, a pair used once, for up to 3,000 holds/s; pgbench
        # picks random seats among all of them.
        schedules = -(-self.secs * 3000 // hold_vus)
        self.k6_env = {"SECONDS_EACH": self.secs, "VUS": os.environ.get("CEILING_VUS") or 32, "HOLD_VUS": hold_vus,
                       "SCHEDULES": schedules, "CONCERT_ID": 1, "PGBENCH_CLIENTS": self.clients}
        self.seed_args = ["--concerts", "1", "--schedules-per-concert", str(schedules), "--seats-per-schedule", str(hold_vus),
                          "--users", str(max(hold_vus, self.clients)), "--points", "1000000"]
        self.server_env = queue_settings(100000, 1000, 120, 900, HOLD_TTL_SECONDS=900)

    def prepare(self, run):
        """pgbench on the hold transaction of booking/mod.rs, each variant for --duration."""
        nseats = run.db.value("select max(id) from seats")
        template = read_text(PROJECT_ROOT / "k6-graphql" / "tools" / "hold.pgbench.sql")
        for variant in ("rollback", "commit"):
            say(f"pgbench: the hold transaction ({variant}), {self.clients} clients, {self.secs}s")
            script = re.sub(rf"(?m)^-- @{variant}@ ", "", template.replace("@END@", variant.upper()))
            (run.out_dir / f"pgbench-{variant}.sql").write_text(script)
            log = run.out_dir / f"pgbench-{variant}.log"
            with open(log, "wb") as f:
                rc = subprocess.call(["pgbench", "-n", "-f", str(run.out_dir / f"pgbench-{variant}.sql"), "-c", str(self.clients),
                                      "-j", os.environ.get("PGBENCH_JOBS") or "2", "-T", str(self.secs), "-P", "1",
                                      "-D", f"nseats={nseats}", run.db.url], stdout=f, stderr=subprocess.STDOUT)
            if rc != 0:
                print("\n".join(read_text(log).splitlines()[-20:]))
                raise Fatal(f"pgbench ({variant}) failed")

    def report(self, ctx):
        s = ctx.summary
        secs_each = ctx.env_int("SECONDS_EACH", 15)
        parts = {p: {"requests": s.count(f"http_reqs{{part:{p}}}"), "per_s": s.count(f"http_reqs{{part:{p}}}") / secs_each,
                     "latency_ms": s.latency(f"http_req_duration{{part:{p}}}")} for p in NAMES}
        parts["holds"]["ok_per_s"] = s.count("ceiling_holds_ok") / secs_each
        failed = {"healthz": s.get("http_req_failed{part:healthz}", "value"), "typename": s.get("graphql_failed{part:typename}", "value"),
                  "holds": s.get("graphql_failed{part:holds}", "value")}
        pg = {v: pgbench_result(read_text(ctx.run_dir / f"pgbench-{v}.log")) for v in ("rollback", "commit")}
        ceilings = {"healthz": parts["healthz"]["per_s"], "typename": parts["typename"]["per_s"], "api_holds": parts["holds"]["ok_per_s"],
                    "pgbench_rollback": pg["rollback"]["tps"], "pgbench_commit": pg["commit"]["tps"]}
        ratios = [{"ratio": label, "value": ratio(ceilings[a], ceilings[b])} for label, a, b, _ in RATIOS]
        committed = [] if ctx.smoke else committed_results(ceilings)
        ok_parts = all((failed[p] or 0) < 0.01 for p in failed) and all(pg[v]["tps"] for v in pg)
        res = resources_of(ctx.samples)
        return Report(
            title=self.title, judge_plan=False, resources=res, resources_window="over the k6 parts",
            goals=[("every part ran (< 1 % failed requests, pgbench finished)", ", ".join(f"{p} {pct(failed[p], 2)}" for p in failed), ok_parts)],
            load_model=(f"each part {secs_each} s, one after the other, closed model: /healthz and `{{ __typename }}` with "
                        f"{ctx.k6_env.get('VUS')} VUs, API holds with {ctx.k6_env.get('HOLD_VUS')} VUs; before them pgbench with "
                        f"{ctx.k6_env.get('PGBENCH_CLIENTS', '?')} clients for {secs_each} s per variant"),
            headline=(f"/healthz {n0(ceilings['healthz'])} req/s, GraphQL `{{ __typename }}` {n0(ceilings['typename'])} req/s, API holds "
                      f"{n0(ceilings['api_holds'])}/s; pgbench on the raw hold transaction {n0(ceilings['pgbench_commit'])} tps committed "
                      f"({n0(ceilings['pgbench_rollback'])} tps rolled back)."),
            data={"load_model": {"seconds_each": secs_each, "vus": ctx.k6_env.get("VUS"), "hold_vus": ctx.k6_env.get("HOLD_VUS")},
                  "results": {"ceilings": ceilings, "parts": parts, "failed": failed, "pgbench": pg, "ratios": ratios,
                              "committed_results": committed}, "resources": res},
            sections=[section("Results", ceiling_table(parts, pg), ratio_table(ratios), committed_table(committed, ceilings))])


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
    rows = [[NAMES[p], f"**{n0(d['ok_per_s'] if p == 'holds' else d['per_s'])}**/s",
             " / ".join(ms(d["latency_ms"].get(k)) for k in ("med", "p(95)", "p(99)"))] for p, d in parts.items()]
    for v, label in (("rollback", "pgbench: hold transaction, rolled back (upper bound)"),
                     ("commit", "pgbench: hold committed, then given back (lower bound)")):
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
