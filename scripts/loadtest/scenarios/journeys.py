"""What the full-journey scenarios (mixed, spike, breakpoint) share: their data and server
settings, their measurements, and their results tables. A journey (k6-graphql/lib/journey.js):
enterQueue -> queueStatus until ACTIVE -> concerts -> concert -> schedule -> hold -> pay -> me;
SOLD_OUT ends it as an answer, BUSY is retried after retryAfterMs and counted apart."""

import os

from loadtest.checks import Measure
from loadtest.fmt import counts, in_server, le_ms, ms, n0, num, pct
from loadtest.metrics import counter_by, counter_sum, hist_quantile
from loadtest.report import Table
from loadtest.scenarios.base import (Scenario, deadlock_goal, kv_table, pg_rows, product_queue, queue_settings, retries_row,
                                     section)
from loadtest.util import positive_int

OPS = ("enterQueue", "queueStatus", "concerts", "concert", "schedule", "holdSeats", "holdBestAvailable", "pay", "me")
OUTCOMES = ("paid", "held", "sold_out", "not_active", "busy", "failed")
# Requests a journey sends when nothing goes wrong (JOURNEY_REQUESTS in lib/journey.js).
REQUESTS_PER_JOURNEY = 8


class JourneyScenario(Scenario):
    def journey_setup(self, journeys, metered=False):
        """Data for at most `journeys` journeys of up to 2 seats each, with the halls ~70 % full at
        the end, in SEATS_PER_SCHEDULE (500) seat halls over at most 10 concerts (LOAD_CONCERTS);
        fans (--users; one per journey, 100 to 20,000) with points for every journey they make.
        `metered`: the queue as the product ships it (adaptive admission, its defaults); otherwise
        every fan is ACTIVE within a tick (spike, breakpoint: admission is not what they measure)."""
        sps = positive_int("SEATS_PER_SCHEDULE", os.environ.get("SEATS_PER_SCHEDULE") or 500)
        seats = max((journeys * 15 + 6) // 7, sps)
        schedules = -(-seats // sps)
        concerts = positive_int("LOAD_CONCERTS", os.environ.get("LOAD_CONCERTS") or min(schedules, 10))
        users = positive_int("--users", self.opts.get("users") or min(max(journeys, 100), 20000))
        per_fan = -(-journeys // users)
        points = per_fan * 2 * 150000 + 100000  # 2 VIP seats a journey: no INSUFFICIENT_POINTS
        self.seed_args = ["--concerts", str(concerts), "--schedules-per-concert", str(-(-schedules // concerts)),
                          "--seats-per-schedule", str(sps), "--users", str(users), "--points", str(points)]
        self.k6_env.update(USERS=users, CONCERTS=concerts, RUN_ID=self.stamp, JOURNEYS_SEEDED=journeys)
        if metered:
            self.server_env = product_queue(HOLD_TTL_SECONDS=600)
        else:
            self.server_env = queue_settings(100000, users + 1000, 120, 900, HOLD_TTL_SECONDS=600, SEAT_MAP_CACHE_TTL_SECONDS=2)

    def measures(self, run):
        info = [("payments", "select count(*) from payments"),
                ("CONFIRMED reservations", "select count(*) from reservations where status = 'CONFIRMED'"),
                ("HELD reservations (journeys that stopped before paying)", "select count(*) from reservations where status = 'HELD'"),
                ("other reservations (CANCELLED, EXPIRED)", "select count(*) from reservations where status not in ('HELD', 'CONFIRMED')"),
                ("seats SOLD", "select count(*) from seats where status = 'SOLD'"),
                ("seats", "select count(*) from seats")]
        return [Measure(name, None, sql) for name, sql in info]


def journey_stats(s, tag=None):
    """Everything about the journeys of a run, or of the requests tagged `tag` (e.g. phase:burst)."""
    sub = (lambda name: f"{name}{{{tag}}}") if tag else (lambda name: name)
    failed, total = s.rate_counts(sub("journey_real_failed"))
    per_op = {}
    for op in OPS if not tag else ():
        if s.count(f"http_reqs{{op:{op}}}"):
            per_op[op] = {"requests": s.count(f"http_reqs{{op:{op}}}"), "latency_ms": s.latency(f"http_req_duration{{op:{op}}}"),
                          "real_failed_rate": s.get(f"journey_real_failed{{op:{op}}}", "value"),
                          "busy": s.count(f"journey_busy{{op:{op}}}")}
    return {
        "requests": s.count(sub("http_reqs")), "latency_ms": s.latency(sub("http_req_duration")),
        "real_failed": failed, "real_failed_rate": failed / total if total else None,
        "journey_ms": s.latency(sub("journey_ms"), ("med", "p(90)", "p(95)", "p(99)", "max", "count")),
        "journey_active_ms": s.latency(sub("journey_active_ms"), ("med", "p(90)", "p(95)", "p(99)", "max", "count")),
        "answer_latency_ms": s.latency(sub("journey_answer_ms")),
        "busy": {"count": s.count(sub("journey_busy")), "latency_ms": s.latency(sub("journey_busy_ms"), ("med", "p(95)", "p(99)", "max")),
                 "by_op": {op: s.count(f"journey_busy{{op:{op}}}") for op in OPS if not tag and s.count(f"journey_busy{{op:{op}}}")},
                 "without_retry_after": s.count("journey_busy_without_hint")},
        "poll_after_seconds": s.latency("journey_poll_after_seconds", ("min", "med", "max", "count")),
        "poll_hint_missing": s.count("journey_poll_hint_missing"),
        "per_op": per_op,
        "outcomes": {o: s.count(f"journey_outcomes{{outcome:{o}}}") for o in OUTCOMES} if not tag else {},
        "errors_by_code": s.errors_by("code") if not tag else {},
        "me_mismatch": s.count("journey_me_mismatch"), "pay_retries": s.count("journey_pay_retries"),
        "queue_wait_ms": s.latency("journey_queue_wait_ms", ("med", "p(95)", "max")),
        "dropped_iterations": s.count("dropped_iterations"), "vus_peak": s.get("vus", "max"),
        "vus_max": s.get("vus_max", "max") or s.get("vus_max", "value"),
    }


def windows_of(s, seconds):
    """Per window (by send time): requests/s, P95, P99 and the failure rate."""
    out = []
    for w in s.windows("http_reqs{"):
        n = s.count(f"http_reqs{{window:w{w}}}")
        out.append({"window": int(w), "from_s": int(w) * seconds, "requests": n, "per_s": n / seconds,
                    "p95_ms": s.get(f"http_req_duration{{window:w{w}}}", "p(95)"),
                    "p99_ms": s.get(f"http_req_duration{{window:w{w}}}", "p(99)"),
                    "failed_rate": s.get(f"journey_real_failed{{window:w{w}}}", "value")})
    return out


def server_side(prom):
    return {"hold_p95_s_le": hist_quantile(prom, "hold_duration_seconds", 0.95),
            "payment_p95_s_le": hist_quantile(prom, "payment_duration_seconds", 0.95),
            "db_pool_wait_p99_s_le": hist_quantile(prom, "db_pool_wait_seconds", 0.99),
            "db_retries": counter_by(prom, "db_retries_total", "reason"),
            "outbox_backlog_end": counter_sum(prom, "outbox_backlog"),
            "queue_admissions_total": counter_sum(prom, "queue_admissions_total")}


def goals(ctx, js):
    return [("every fan's page (`me`) agrees with their receipt (booking CONFIRMED, balance = balanceAfter)",
             f"{js['me_mismatch']:,} disagreed", js["me_mismatch"] == 0),
            deadlock_goal(ctx.pg)]


def results_table(js):
    lat, jm, ja, b = js["latency_ms"], js["journey_ms"], js["journey_active_ms"], js["busy"]
    keys = ("med", "p(90)", "p(95)", "p(99)", "max")
    rows = [
        ["GraphQL requests", f"{js['requests']:,}"],
        ["request latency, answers (BUSY apart) P50 / P90 / P95 / P99 / max", " / ".join(ms(js["answer_latency_ms"].get(k)) for k in keys)],
        ["request latency, every request P50 / P90 / P95 / P99 / max", " / ".join(ms(lat.get(k)) for k in keys)],
        ["error rate (SEAT_UNAVAILABLE, SOLD_OUT excluded; BUSY apart)", f"{pct(js['real_failed_rate'])} ({js['real_failed']:,} requests)"],
        ["BUSY answers (retried after `retryAfterMs`)", f"{b['count']:,} ({counts(b['by_op'])}); latency P50 / P95 / P99 / max "
         + " / ".join(ms(b["latency_ms"].get(k)) for k in ("med", "p(95)", "p(99)", "max"))
         + f"; without `retryAfterMs` {b['without_retry_after']:,}"],
        ["journeys paid: end-to-end P50 / P95 / P99 / max", " / ".join(ms(jm.get(k)) for k in ("med", "p(95)", "p(99)", "max"))
         + f" ({n0(jm.get('count'))} journeys)"],
        ["journeys once ACTIVE (ACTIVE seen → done) P50 / P95 / P99 / max", " / ".join(ms(ja.get(k)) for k in ("med", "p(95)", "p(99)", "max"))],
        ["poll hints (`pollAfterSeconds`) min / P50 / max; WAITING answers without one",
         " / ".join(num(js["poll_after_seconds"].get(k), 1, " s") for k in ("min", "med", "max")) + f"; {js['poll_hint_missing']:,}"],
        ["journeys by outcome", ", ".join(f"{k} {v:,}" for k, v in js["outcomes"].items() if v) or "none"],
        ["queue wait (enterQueue → ACTIVE seen) P50 / P95", f"{ms(js['queue_wait_ms'].get('med'))} / {ms(js['queue_wait_ms'].get('p(95)'))}"],
        ["errors by code (all, expected ones included)", counts(js["errors_by_code"], code=True)],
        ["fan's page (`me`) disagreeing with the receipt", f"{js['me_mismatch']:,}"],
        ["payments retried with the same key after a lost answer", f"{js['pay_retries']:,}"],
        ["arrivals k6 had no VU for (dropped_iterations)", f"{js['dropped_iterations']:,}"],
        ["VUs in use, peak / allocated", f"{n0(js['vus_peak'])} / {n0(js['vus_max'])}"],
    ]
    return kv_table(rows)


def op_table(per_op):
    rows = [[f"`{op}`", f"{d['requests']:,}", *(ms(d["latency_ms"].get(k)) for k in ("med", "p(95)", "p(99)", "max")),
             in_server(d), pct(d["real_failed_rate"]), f"{d['busy']:,}"] for op, d in per_op.items()]
    return Table(["operation", "requests", "P50", "P95", "P99", "max", "in the server P50 / P95 / P99", "error rate", "BUSY"], rows,
                 "By operation (P50 to max: k6's latency of every request, BUSY answers included; in the server: "
                 "`graphql_request_duration_seconds`, the bucket holding each percentile):")


def windows_table(windows, seconds, mark=None):
    headers = ["from (s)", "requests/s", "P95", "P99", "failed"] + ([""] if mark else [])
    rows = [[str(w["from_s"]), f"{w['per_s']:,.0f}", ms(w["p95_ms"]), ms(w["p99_ms"]), pct(w["failed_rate"], 2)]
            + ([mark(w)] if mark else []) for w in windows]
    return Table(headers, rows, f"Over time ({seconds} s windows by when the request was sent):")


def server_section(ss, pg):
    rows = [["hold transaction P95 (`hold_duration_seconds`)", le_ms(ss["hold_p95_s_le"])],
            ["payment P95 (`payment_duration_seconds`)", le_ms(ss["payment_p95_s_le"])],
            ["database pool wait P99", le_ms(ss["db_pool_wait_p99_s_le"])], retries_row(ss["db_retries"]),
            ["outbox backlog at the end", n0(ss["outbox_backlog_end"])]] + pg_rows(pg)
    return section("Server view", kv_table(rows))


def journey_data(ctx, js, load_model, **results):
    return {"load_model": load_model, "results": dict(js, **results), "server_metrics": server_side(ctx.prom)}
