"""Scenario 3, concurrent payments: RATE payments/s for DURATION by USERS fans, each paying a hold
made through the API in a prepare phase (not measured). The offer (1,000/s) is above what this
machine serves: the payments beyond capacity must be refused at once with BUSY and a retry hint
(their P99 < 50 ms), none may time out, and the payments completed per second must stay >= 90 %
of the capacity the same run shows (its best steady 10 s window). Env: PREPARE_HOLDS (fewer holds
than RATE x DURATION, for a machine that cannot start that many), PREP_VUS, PREP_BATCH, PRE_VUS,
MAX_VUS, BUSY_RETRIES (0: a payment answered BUSY is not sent again)."""

import json
import os
import re

from loadtest.checks import Measure
from loadtest.fmt import counts, in_server, lat_row, le_ms, ms, n0, num, pct
from loadtest.metrics import counter_by, counter_sum, hist_buckets, hist_diff, hist_mean_ms, bucket_quantile, hist_quantile, server_latency
from loadtest.report import Report, Table, resources_of
from loadtest.scenarios.base import Scenario, busy_k6, kv_table, pg_rows, queue_settings, retries_row, section
from loadtest.util import (Fatal, duration_seconds, positive_int, read_json, read_text, read_tsv, rel, say, utc_now,
                           write_json)

ORDER = ("http_req_duration{op:pay}", "payment_busy_ms", "graphql_errors{code:TIMEOUT}", "payment_succeeded", "payment_real_failed")
CAPACITY_SHARE = 0.9
OUTBOX_LIMIT = 1000


class Payments(Scenario):
    name = "payments"
    title = "Load test: concurrent payments (scenario 3)"
    script = "k6-graphql/payments.js"
    takes = ("users", "rate", "duration")
    has_prepare = True

    def configure(self):
        self.users = positive_int("--users", self.opts.get("users") or 30000)
        rate = positive_int("--rate", self.opts.get("rate") or 1000)
        dur = positive_int("--duration", duration_seconds(self.opts.get("duration") or "5m"))
        self.payments = rate * dur
        self.holds = min(positive_int("PREPARE_HOLDS", os.environ.get("PREPARE_HOLDS") or self.payments), self.payments)
        self.concerts = -(-self.holds // self.users)
        # One VIP seat (150,000 points, the dearest) per concert per fan, and some to spare: no
        # INSUFFICIENT_POINTS by construction.
        points = self.concerts * 150000 + 100000
        # Admission is not measured here: every fan is ACTIVE within a tick in the prepare phase.
        self.k6_env = {"PHASE": "pay", "USERS": self.users, "RATE": rate, "DURATION": dur, "PAYMENTS": self.payments,
                       "PREPARE_HOLDS": self.holds, "CONCERTS": self.concerts, "SEATS_PER_SCHEDULE": self.users,
                       "RUN_ID": self.stamp}
        self.seed_args = ["--concerts", str(self.concerts), "--schedules-per-concert", "1", "--seats-per-schedule",
                          str(self.users), "--users", str(self.users), "--points", str(points)]
        # Every fan ACTIVE in every concert within a tick; tokens and holds last an hour.
        self.server_env = queue_settings(100000, self.users + 1000, 120, 3600, HOLD_TTL_SECONDS=3600)

    def prepare(self, run):
        """Every hold the measured phase pays, made through the API by k6 (PHASE=prepare) and
        collected from its console into prepared.json."""
        bad = run.db.value("select count(*) from seats s join schedules sc on sc.id = s.schedule_id "
                           "where s.id <> (s.schedule_id - 1) * %s + s.number or sc.concert_id <> s.schedule_id", (self.users,))
        if bad:
            raise Fatal(f"seeded seat ids do not follow (schedule - 1) x seats + number ({bad} rows): payments.js cannot address them")
        say(f"prepare: {self.holds} holds through the API ({self.concerts} concerts x up to {self.users} fans; "
            f"log: {rel(run.out_dir / 'prepare-k6.log')})")
        started = utc_now()
        seconds, rc = run.run_phase("prepare")
        rows = prepared_holds(run.out_dir / "prepare-console.log")
        (run.out_dir / "prepared.json").write_text(json.dumps(rows, separators=(",", ":")))
        write_json(run.out_dir / "prepare.json", {"seconds": seconds, "holds": len(rows), "wanted": self.holds,
                                                  "payments": self.payments, "k6_exit": rc, "started": started})
        say(f"prepare: {len(rows)} of {self.holds} holds in {seconds}s")
        if not rows:
            raise Fatal(f"no hold was prepared; see {rel(run.out_dir / 'prepare-k6.log')}")
        self.k6_env["PREPARED"] = str(run.out_dir / "prepared.json")

    def measures(self, run):
        info = [("payments", "select count(*) from payments"),
                ("CONFIRMED reservations", "select count(*) from reservations where status = 'CONFIRMED'"),
                ("HELD reservations (prepared, not paid)", "select count(*) from reservations where status = 'HELD'"),
                ("other reservations (CANCELLED, EXPIRED)", "select count(*) from reservations where status not in ('HELD', 'CONFIRMED')"),
                ("seats SOLD", "select count(*) from seats where status = 'SOLD'"),
                ("points paid in all", "select coalesce(sum(amount), 0) from payments")]
        return [Measure(name, None, sql) for name, sql in info] + [charged_anyway(run.out_dir / "k6.log")]

    def report(self, ctx):
        s = ctx.summary
        rate, duration = ctx.env_int("RATE", 0), ctx.env_int("DURATION", 0)
        r = results(s, duration)
        r["payments_in_database"] = ctx.check_value("payments")
        r["capacity"] = payment_capacity(r["windows"])
        r["outbox_backlog_peak"] = peak(ctx.samples, "outbox_backlog")
        prep = prepare_info(ctx)
        server = server_metrics(ctx.prom, ctx.prom_prepare, ctx.pg, s.count("http_reqs{op:pay}"))
        res = resources_of(ctx.samples, busy_k6)
        tps, ok = r["payments_per_second"], r["paid"]
        data = {"load_model": {"rate": rate, "duration_s": duration, "payments_offered": ctx.env_int("PAYMENTS", rate * duration),
                               "users": ctx.env_int("USERS", 0), "concerts": ctx.env_int("CONCERTS", 0),
                               "pre_allocated_vus": ctx.env_int("PRE_VUS", 500), "max_vus": ctx.env_int("MAX_VUS", 1000),
                               "busy_retries": ctx.env_int("BUSY_RETRIES", 0),
                               "holds_prepared_wanted": ctx.env_int("PREPARE_HOLDS", rate * duration)},
                "prepare": prep, "results": r, "windows": r.pop("windows"), "server_metrics": server, "resources": res}
        return Report(
            title=self.title, data=data, goals=goals(ctx, r, rate, duration), resources=res, resources_window="while paying",
            plan=s.judged(ORDER), labels=labels(r, s.count("http_reqs{op:pay}")),
            load_model=(f"constant arrival rate: {rate:,} payments/s for {duration} s by {ctx.env_int('USERS', 0):,} fans, "
                        f"each `pay` of a hold prepared through the API; up to {ctx.env_int('MAX_VUS', 1000):,} in flight; "
                        + (f"a payment answered BUSY is sent again after `retryAfterMs`, at most {ctx.env_int('BUSY_RETRIES', 0)} times"
                           if ctx.env_int("BUSY_RETRIES", 0) else "a payment answered BUSY is not sent again")),
            run_rows=[("prepare phase (not measured)", prepare_text(prep))] if prep else [],
            headline=(f"{rate:,} payments/s offered for {duration} s; {ok:,} paid ({num(tps, 1)}/s; steady windows "
                      f"{num(r['capacity']['steady_per_s'], 0)}/s, best {num(r['capacity']['best_per_s'], 0)}/s), payment P95 "
                      f"{ms(r['latency_ms'].get('p(95)'))}, P99 {ms(r['latency_ms'].get('p(99)'))}; {r['busy']['count']:,} BUSY "
                      f"answers, P99 {ms(r['busy']['latency_ms'].get('p(99)'))}; {r['timeouts']:,} TIMEOUT."),
            sections=[section("Results", kv_table(result_rows(rate, duration, r)), window_table(data["windows"])),
                      section("Server view", kv_table(server_rows(server, res, ctx.server_env)))])


def goals(ctx, r, rate, duration):
    tps, ok, cap, backlog = r["payments_per_second"], r["paid"], r["capacity"], r["outbox_backlog_peak"]
    return [
        (f"payments completed per second ≥ {CAPACITY_SHARE * 100:.0f} % of the capacity measured in this run (steady windows "
         "against the best steady 10 s window)", f"{num(cap['steady_per_s'], 0)} /s of {num(cap['best_per_s'], 0)} /s "
         f"({pct(cap['steady_of_best'], 1)})", None if cap["steady_of_best"] is None else cap["steady_of_best"] >= CAPACITY_SHARE),
        (f"payments completed against the {rate:,} /s offered", f"{num(tps, 0)} /s ({ok:,} in {duration} s, "
         f"{pct(tps / rate if tps is not None and rate else None, 1)})", None),
        ("max throughput > 500 TPS (plan, success criteria)", f"{num(tps, 0)} /s", None if ctx.smoke else (tps or 0) > 500),
        (f"outbox backlog stays < {OUTBOX_LIMIT:,} (peak of the 1 s samples of `outbox_backlog`)", n0(backlog),
         None if backlog is None else backlog < OUTBOX_LIMIT),
        ("deadlocks < 10 (`pg_stat_database.deadlocks` delta during the measured phase)", n0(ctx.pg.get("deadlocks")),
         None if ctx.pg.get("deadlocks") is None else ctx.pg["deadlocks"] < 10),
        ("payments in the database = receipts k6 got", f"{n0(r['payments_in_database'])} vs {ok:,}",
         None if r["payments_in_database"] is None else r["payments_in_database"] == ok),
        ("every started payment had a prepared hold", f"{r['no_hold_left']:,} without", r["no_hold_left"] == 0),
    ]


def payment_capacity(windows):
    """The run's own payment capacity: the most payments completed in one steady 10 s window (the
    first and last windows, ramp and tail, left out when there are more than three), and the
    mean of the steady windows against it."""
    steady = windows[1:-1] if len(windows) > 3 else windows
    rates = [w["completed_per_s"] for w in steady if w.get("completed_per_s") is not None]
    if not rates:
        return {"best_per_s": None, "steady_per_s": None, "steady_of_best": None, "windows": 0}
    best, mean = max(rates), sum(rates) / len(rates)
    return {"best_per_s": best, "steady_per_s": mean, "steady_of_best": mean / best if best else None, "windows": len(rates)}


def peak(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return max(vals) if vals else None


def prepared_holds(console_log):
    """The [[k, reservationId, token], ...] of every PREPARED line, by k; fails on a duplicate."""
    rows = []
    for line in read_text(console_log).splitlines():
        m = re.search(r"PREPARED (\[\[.*\]\])", line)
        if m:
            rows.extend(json.loads(m.group(1).replace('\\"', '"')))
    rows.sort(key=lambda r: r[0])
    ks = [r[0] for r in rows]
    if len(set(ks)) != len(ks):
        raise Fatal("prepared the same hold twice")
    return rows


def charged_anyway(k6_log):
    """Payments k6 saw fail (PAYFAIL lines) that the database shows as paid anyway, by code."""
    failed = re.findall(r"PAYFAIL (\d+) ([A-Z0-9_]+)", read_text(k6_log))
    ids = [int(i) for i, _ in failed] or [0]
    codes = [c for _, c in failed] or [""]
    sql = ("select coalesce(string_agg(code || ' ' || n, ', ' order by code), 'none') from (select f.code, count(*) n "
           "from unnest(%s::bigint[], %s::text[]) f(reservation_id, code) join payments p on p.reservation_id = f.reservation_id "
           "group by f.code) x")
    return Measure(f"payments k6 saw fail ({len(failed)} in k6.log) that were charged anyway, by the code k6 got", None, sql, (ids, codes))


def results(s, duration):
    ok = s.count("payments_ok")
    windows = []
    for w in s.windows("http_req_duration{op:pay,"):
        name = f"http_req_duration{{op:pay,window:w{w}}}"
        n = s.count(name)
        windows.append({"from_s": int(w) * 10, "payments_sent": n, "per_s": n / 10, "p50_ms": s.get(name, "med"),
                        "p95_ms": s.get(name, "p(95)"), "p99_ms": s.get(name, "p(99)"),
                        "completed_per_s": s.count(f"payments_ok{{window:w{w}}}") / 10,
                        "busy_per_s": s.count(f"payments_busy{{window:w{w}}}") / 10,
                        "succeeded": s.get(f"payment_succeeded{{window:w{w}}}", "value")})
    by_code = s.errors_by("code")
    return {
        "started": s.count("iterations"), "dropped": s.count("dropped_iterations"), "paid": ok,
        "payments_per_second": ok / duration if duration else None,
        "success_rate": s.get("payment_succeeded", "value"), "real_failed_rate": s.get("payment_real_failed", "value"),
        "real_failed": s.rate_counts("payment_real_failed")[0], "answered": s.rate_counts("payment_real_failed")[1],
        "graphql_failed_rate": s.get("graphql_failed", "value"), "latency_ms": s.latency("http_req_duration{op:pay}"),
        "latency_ok_ms": s.latency("payment_ms"), "latency_failed_ms": s.latency("payment_failed_ms", ("med", "p(95)", "max")),
        "busy": {"count": s.count("payments_busy"), "latency_ms": s.latency("payment_busy_ms", ("med", "p(95)", "p(99)", "max")),
                 "without_retry_after": s.count("payments_busy_without_hint"), "refused": s.count("payments_refused_busy"),
                 "retries": s.count("payment_busy_retries")},
        "timeouts": by_code.get("TIMEOUT", 0), "errors_by_code": by_code, "vus_peak": s.get("vus", "max"),
        "vus_allocated": s.get("vus_max", "max") or s.get("vus_max", "value"), "no_hold_left": s.count("payments_no_hold_left"),
        "windows": windows,
    }


def prepare_info(ctx):
    prep = read_json(ctx.run_dir / "prepare.json", {}) or {}
    if not prep:
        return {}
    info = {"seconds": prep.get("seconds"), "holds": prep.get("holds"), "wanted": prep.get("wanted"),
            "holds_per_second": prep["holds"] / prep["seconds"] if prep.get("seconds") else None}
    ps = ctx.summary_of("prepare-summary.json")
    if ps:
        info.update(hold_latency_ms=ps.latency("prepare_hold_ms", ("med", "p(95)", "p(99)", "max")),
                    failed=ps.count("prepare_failed"), errors_by_code=ps.errors_by("code"),
                    requests={op: ps.count(f"http_reqs{{op:{op}}}") for op in ("enterQueue", "queueStatus", "holdSeats")})
    rows = read_tsv(ctx.run_dir / "prepare-samples.tsv")
    if rows:
        info["resources"] = resources_of(rows)
    return info


def prepare_text(p):
    res = p.get("resources") or {}
    return (f"{n0(p.get('holds'))} of {n0(p.get('wanted'))} holds in {p.get('seconds')} s ({num(p.get('holds_per_second'), 0)}/s); "
            f"hold P50 / P95 / P99 / max {lat_row(p.get('hold_latency_ms'))}; failed {n0(p.get('failed'))}; machine "
            f"{n0(res.get('machine_busy_avg'))} % busy on average (server {n0(res.get('server_cpu_avg'))} %, PostgreSQL "
            f"{n0(res.get('pg_cpu_avg'))} %, k6 {n0(res.get('k6_cpu_avg'))} % of one core)")


def server_metrics(prom, before, pg, pay_reqs):
    """The server's view of the measured phase (the prepare phase's counts subtracted)."""
    pool_wait = hist_diff(hist_buckets(prom, "db_pool_wait_seconds"), hist_buckets(before, "db_pool_wait_seconds"))
    checkouts = (counter_sum(prom, "db_pool_wait_seconds_count") or 0) - (counter_sum(before, "db_pool_wait_seconds_count") or 0)
    statements = (counter_sum(prom, "db_statements_total") or 0) - (counter_sum(before, "db_statements_total") or 0)
    r_after, r_before = counter_by(prom, "db_retries_total", "reason"), counter_by(before, "db_retries_total", "reason")
    return {
        "payment_mean_ms": hist_mean_ms(prom, "payment_duration_seconds"),
        "payment_p50_s_le": hist_quantile(prom, "payment_duration_seconds", 0.5),
        "payment_p95_s_le": hist_quantile(prom, "payment_duration_seconds", 0.95),
        "payment_p99_s_le": hist_quantile(prom, "payment_duration_seconds", 0.99),
        "payments_by_outcome": counter_by(prom, "payments_total", "outcome"),
        "pay_request": server_latency({"pay": {}}, prom)["pay"]["server_s_le"],
        "db_pool_wait_mean_ms": hist_mean_ms(prom, "db_pool_wait_seconds", before),
        "db_pool_wait_p50_s_le": bucket_quantile(pool_wait, 0.5), "db_pool_wait_p99_s_le": bucket_quantile(pool_wait, 0.99),
        "db_pool_checkouts": checkouts, "db_statements": statements,
        "db_statements_per_payment_request": statements / pay_reqs if pay_reqs else None,
        "db_retries": {k: v - r_before.get(k, 0) for k, v in r_after.items() if v - r_before.get(k, 0)},
        "deadlocks": pg.get("deadlocks"), "xact_commit": pg.get("xact_commit"), "xact_rollback": pg.get("xact_rollback"),
        "xact_commit_per_payment_request": pg.get("xact_commit") / pay_reqs if pay_reqs and pg.get("xact_commit") else None,
    }


def labels(r, pay_reqs):
    lat, b = r["latency_ms"], r["busy"]
    return {
        ("http_req_duration{op:pay}", "p(95)<500"): ("payment P95 < 500 ms (every request, BUSY answers included)", ms(lat.get("p(95)"))),
        ("http_req_duration{op:pay}", "p(99)<1000"): ("payment P99 < 1,000 ms (every request, BUSY answers included)", ms(lat.get("p(99)"))),
        ("payment_busy_ms", "p(99)<50"): ("BUSY answers (refused beyond capacity, with a retry hint) P99 < 50 ms",
                                          f"{ms(b['latency_ms'].get('p(99)'))} ({b['count']:,} answers)"),
        ("graphql_errors{code:TIMEOUT}", "count<1"): ("0 `TIMEOUT` answers", f"{r['timeouts']:,}"),
        ("payment_succeeded", "rate>0.995"): ("success rate > 99.5 % (of the payments not refused BUSY)", pct(r["success_rate"])),
        ("payment_real_failed", "rate<0.005"): ("error rate < 0.5 % (every pay request not answered BUSY)",
                                                f"{pct(r['real_failed_rate'])} ({r['real_failed']:,} of {r['answered']:,})"),
    }


def result_rows(rate, duration, r):
    lat, b, cap = r["latency_ms"], r["busy"], r["capacity"]
    failed = [["latency of failed payments P50 / P95 / max", lat_row(r["latency_failed_ms"], ("med", "p(95)", "max"))]]
    return [
        ["offered", f"{rate:,} payments/s for {duration} s = {rate * duration:,}"],
        ["started / dropped by k6 (no free VU)", f"{r['started']:,} / {r['dropped']:,}"],
        ["paid (receipt with amount and balanceAfter)", f"**{r['paid']:,}** → {num(r['payments_per_second'], 1)} payments/s over "
         f"{duration} s; steady windows {num(cap['steady_per_s'], 0)}/s, best window {num(cap['best_per_s'], 0)}/s"],
        ["refused BUSY (with `retryAfterMs`), not completed", f"{b['refused']:,} payments; {b['count']:,} BUSY answers in all, "
         f"{b['retries']:,} retries sent after one; without `retryAfterMs` {b['without_retry_after']:,}"],
        ["latency of the BUSY answers P50 / P95 / P99 / max", lat_row(b["latency_ms"])],
        ["success rate of the payments not refused BUSY", pct(r["success_rate"])],
        ["payment latency, every request, P50 / P90 / P95 / P99 / max", " / ".join(ms(lat.get(k)) for k in ("med", "p(90)", "p(95)", "p(99)", "max"))],
        ["latency of successful payments P50 / P95 / P99 / max", lat_row(r["latency_ok_ms"])],
    ] + (failed if r["latency_failed_ms"].get("max") else []) + [
        ["errors by code (BUSY included)", counts(r["errors_by_code"], code=True)],
        ["`TIMEOUT` answers", f"{r['timeouts']:,}"],
        ["outbox backlog, peak of the 1 s samples", n0(r["outbox_backlog_peak"])],
        ["VUs in use, peak / allocated", f"{n0(r['vus_peak'])} / {n0(r['vus_allocated'])}"],
        ["payments started without a prepared hold", f"{r['no_hold_left']:,}"],
        ["payments in the database", n0(r["payments_in_database"])],
    ]


def window_table(windows):
    rows = [[str(w["from_s"]), f"{w['per_s']:,.0f}", f"{w['completed_per_s']:,.0f}", f"{w['busy_per_s']:,.0f}", ms(w["p50_ms"]),
             ms(w["p95_ms"]), ms(w["p99_ms"]), pct(w["succeeded"], 2)] for w in windows]
    return Table(["from (s)", "sent /s", "completed /s", "BUSY /s", "P50", "P95", "P99", "succeeded"], rows,
                 "Over time (10 s windows by when the payment was sent):")


def server_rows(sv, res, server_env):
    return [
        ["payment time in the server (`payment_duration_seconds`) mean / P50 / P95 / P99",
         f"{num(sv['payment_mean_ms'], 1, ' ms')} / " + " / ".join(le_ms(sv[f"payment_{q}_s_le"]) for q in ("p50", "p95", "p99"))],
        ["pay request in the server, BUSY answers included (`graphql_request_duration_seconds{operation=pay}`) P50 / P95 / P99",
         in_server({"server_s_le": sv.get("pay_request")})],
        ["payments by outcome (`payments_total`)", counts(sv["payments_by_outcome"])],
        ["database pool wait, measured phase: mean / P50 / P99", f"{num(sv['db_pool_wait_mean_ms'], 1, ' ms')} / "
         f"{le_ms(sv['db_pool_wait_p50_s_le'])} / {le_ms(sv['db_pool_wait_p99_s_le'])}"],
        ["database pool in use (1 s samples) avg / peak", f"{n0(res.get('pool_in_use_avg'))} / {n0(res.get('pool_in_use_peak'))} "
         f"of {server_env.get('DATABASE_POOL_SIZE', '32')}"],
        ["SQL statements / commits per payment request", f"{num(sv['db_statements_per_payment_request'], 1)} / "
         f"{num(sv['xact_commit_per_payment_request'], 1)}"],
        retries_row(sv["db_retries"]),
    ] + pg_rows(sv)
