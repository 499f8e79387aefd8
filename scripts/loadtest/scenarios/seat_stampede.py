"""Scenario 1, seat reservation stampede: N fans go through the queue, with the product's default
(adaptive) admission, and race for SEATS seats of one schedule. Measures: exactly min(SEATS, N)
holds, hold latency (the row locks are taken in it), failures by kind, BUSY refusals apart, how
soon every fan without a seat learned it (SOLD_OUT), the server's memory.
Env: SEATS (50), MODE (seat | best | mix), MAX_ATTEMPTS (3), POLL (hint | fixed), and any QUEUE_*
server setting to run with other than the product's defaults (recorded in the report)."""

import math
import os

from loadtest.checks import Measure
from loadtest.fmt import counts, in_server, lat_row, le_ms, ms, n0, num, pct, secs
from loadtest.metrics import counter_by, counter_sum, hist_mean_ms, hist_quantile, server_latency
from loadtest.report import Report, Table, resources_of
from loadtest.scenarios.base import (Scenario, admission_over_time, admission_row, admission_text, busy_k6, deadlock_goal,
                                     kv_table, pg_rows, product_queue, retries_row, section)
from loadtest.util import duration_seconds, positive_int

ORDER = ("stampede_hold_ms", "stampede_holds_ok", "stampede_real_failed", "stampede_hold_answered", "stampede_fans_not_active")
OPS = ("enterQueue", "queueStatus", "concert", "schedule", "holdSeats", "holdBestAvailable")
# How a fan without a seat learned it (the `via` tag of stampede_sold_out_learned_epoch_ms).
VIA = ("enterQueue", "queueStatus", "hold", "seat_map", "lost")
MODES = {"seat": "`holdSeats` of one seat chosen at random among those its seat map shows AVAILABLE",
         "best": "`holdBestAvailable(count: 1)`",
         "mix": "odd user ids `holdSeats` of a random free-looking seat, even ones `holdBestAvailable(count: 1)`"}
SOLD_OUT_WITHIN_S = 2.0
RSS_LIMIT_MB = 300


class SeatStampede(Scenario):
    name = "seat-stampede"
    title = "Load test: seat reservation stampede (scenario 1)"
    script = "k6-graphql/seat-stampede.js"
    takes = ("users", "duration")
    queue_concert = 1

    def configure(self):
        users = positive_int("--users", self.opts.get("users") or 10000)
        seats = positive_int("SEATS", os.environ.get("SEATS") or 50)
        max_s = positive_int("--duration", duration_seconds(self.opts.get("duration") or 300))
        self.expected = min(users, seats)
        self.k6_env = {"USERS": users, "SEATS": seats, "CONCERT_ID": 1, "MAX_SECONDS": max_s}
        self.seed_args = ["--concerts", "1", "--schedules-per-concert", "1", "--seats-per-schedule", str(seats),
                          "--users", str(users), "--points", "1000000"]
        # The queue as the product ships it (adaptive admission, 50/s, 500 ACTIVE): metering the
        # crowd is part of what this scenario measures. Holds outlive the run, so the checks after
        # it still see exactly the held seats.
        self.server_env = product_queue(HOLD_TTL_SECONDS=900)

    def measures(self, run):
        n = self.expected
        return [
            Measure("seats HELD (expected: every seat, or one per fan if fewer fans)", n, "select count(*) from seats where status = 'HELD'"),
            Measure("HELD reservations", n, "select count(*) from reservations where status = 'HELD'"),
            Measure("seats in HELD reservations", n, "select count(*) from reservation_seats rs join reservations r "
                    "on r.id = rs.reservation_id where r.status = 'HELD'"),
            Measure("reservations in any other state (CONFIRMED, CANCELLED, EXPIRED)", 0,
                    "select count(*) from reservations where status <> 'HELD'"),
            Measure("seats SOLD", 0, "select count(*) from seats where status = 'SOLD'"),
            Measure("fans holding a seat", None, "select count(distinct user_id) from reservations where status = 'HELD'"),
        ]

    def report(self, ctx):
        s = ctx.summary
        users, seats = ctx.env_int("USERS", 0), ctx.env_int("SEATS", 50)
        expected = min(users, seats)
        r = results(s, SOLD_OUT_WITHIN_S * ctx.scale)
        server_latency(r["per_op"], ctx.prom)
        server = server_metrics(ctx.prom, ctx.pg)
        server["admission"] = admission_over_time(ctx.samples)
        res = resources_of(ctx.samples, busy_k6)
        data = {"load_model": load_model_data(ctx, users, seats, expected),
                "error_accounting": "real failures = every request not answered BUSY whose answer is not data, "
                                    "SEAT_UNAVAILABLE or SOLD_OUT; BUSY answers are counted apart",
                "results": r, "server_metrics": server, "resources": res}
        return Report(
            title=self.title, data=data, load_model=load_model_text(ctx, users), goals=goals(ctx, r, res, users),
            resources=res, resources_window="while k6 was busy", plan=s.judged(ORDER), labels=labels(r, expected),
            headline=(f"{users:,} fans went through the queue ({admission_text(ctx.server_env, short=True)}) and raced "
                      f"for {seats} seats ({users / max(1, seats):,.0f} : 1); {r['holds_ok']} holds succeeded (expected "
                      f"{expected}), hold P95 {ms(r['hold_latency_ms'].get('p(95)'))}, P99 {ms(r['hold_latency_ms'].get('p(99)'))}, "
                      f"real failures {pct(r['real_failed_rate'])}, BUSY {r['busy']['count']:,}; the last fan without a seat "
                      f"learned it {secs(r['sold_out']['lag_s'])} after the last seat went."),
            run_rows=[("admission", admission_text(ctx.server_env)),
                      ("error accounting", "SEAT_UNAVAILABLE and SOLD_OUT are the expected answers for all but the winners; "
                       "BUSY (a refusal with `retryAfterMs`) is retried by the fan and counted apart. The error rate is over "
                       "**real failures** (HTTP ≠ 200, no response, bad JSON, or any other code) among the requests not "
                       "answered BUSY. `graphql_failed`, which counts every error answer, is shown for reference.")],
            sections=[section("Results", kv_table(result_rows(users, r)), op_table(r["per_op"])),
                      section("Server view", kv_table(server_rows(server)))])


def goals(ctx, r, res, users):
    checked = [c for c in ctx.checks or [] if c["passed"] is not None]
    fans_total = sum(r["fans"].values())
    so = r["sold_out"]
    rss = res.get("server_rss_peak_mb") if res.get("samples") else None
    return [("the scenario's data checks as expected (exactly the held seats HELD, nothing sold)",
             f"{sum(1 for c in checked if c['passed'])} of {len(checked)}", ctx.checks_ok),
            ("every fan has one final outcome", f"{fans_total:,} of {users:,}", fans_total == users),
            (f"every fan without a seat learned it within {so['limit_s']:g} s of the last seat going "
             "(max learned − max successful hold, k6 clocks)" + (f" (× {ctx.scale:g} here)" if ctx.scale != 1 else ""),
             f"{secs(so['lag_s'])}; {so['told']:,} of {so['seatless']:,} fans without a seat told", so["passed"]),
            (f"server RSS < {RSS_LIMIT_MB} MB (peak of the 1 s samples)", num(rss, 0, " MB"),
             None if rss is None else rss < RSS_LIMIT_MB),
            deadlock_goal(ctx.pg)]


def sold_out_learning(hold_ok_max_ms, learned_max_ms, seatless, told, limit_s=SOLD_OUT_WITHIN_S):
    """Whether every fan without a seat learned it within `limit_s` of the last seat going, from the
    epoch ms of the last successful hold and of the last fan told, and the counts of fans without
    a seat and of those told (the others stopped on a failure or were never answered)."""
    out = {"seatless": seatless, "told": told, "limit_s": limit_s, "lag_s": None, "passed": None}
    if seatless == 0:
        out["passed"] = True
        return out
    if hold_ok_max_ms is not None and learned_max_ms is not None:
        out["lag_s"] = (learned_max_ms - hold_ok_max_ms) / 1000
    out["passed"] = told == seatless and out["lag_s"] is not None and out["lag_s"] < limit_s
    return out


def results(s, sold_out_within_s=SOLD_OUT_WITHIN_S):
    c = s.count
    hold_codes = s.tagged("stampede_hold_other_errors", "code")
    failed, total = s.rate_counts("stampede_real_failed")
    per_op = {}
    for op in OPS:
        n = s.count(f"http_reqs{{op:{op}}}")
        if n:
            per_op[op] = {"requests": n, "latency_ms": s.latency(f"http_req_duration{{op:{op}}}"),
                          "real_failed_rate": s.get(f"stampede_real_failed{{op:{op}}}", "value"),
                          "busy": s.count(f"stampede_busy{{op:{op}}}")}
    fans = {k: c(f"stampede_fans_{k}") for k in ("held", "lost", "sold_out", "failed", "not_active")}
    return {
        "fans": fans, "sold_out_by_via": s.tagged("stampede_fans_sold_out", "via"),
        "sold_out": sold_out_report(s, fans, sold_out_within_s),
        "holds_ok": c("stampede_holds_ok"), "hold_attempts": c("stampede_hold_attempts"),
        "seat_unavailable": c("stampede_hold_seat_unavailable"), "hold_sold_out": c("stampede_hold_sold_out"),
        "hold_other_errors": c("stampede_hold_other_errors"), "hold_errors_by_code": hold_codes,
        "lock_timeouts": hold_codes.get("TIMEOUT", 0),
        "hold_latency_ms": s.latency("stampede_hold_ms"), "hold_ok_latency_ms": s.latency("stampede_hold_ok_ms"),
        "hold_unavailable_latency_ms": s.latency("stampede_hold_unavailable_ms"),
        "hold_with_retries_ms": s.latency("stampede_hold_with_retries_ms"),
        "busy": busy_report(s, "stampede_busy", "stampede_busy_ms", "stampede_busy_without_hint", OPS),
        "poll_after_seconds": s.latency("stampede_poll_after_seconds", ("min", "med", "max", "count")),
        "poll_hint_missing": c("stampede_poll_hint_missing"),
        "first_hold_at_s": s.get("stampede_hold_ok_at_seconds", "min"), "last_hold_at_s": s.get("stampede_hold_ok_at_seconds", "max"),
        "activation_seconds": s.latency("stampede_activation_seconds", ("med", "p(95)", "max")),
        "active_at_seconds": s.latency("stampede_active_at_seconds", ("min", "med", "max")),
        "booking_seconds": s.latency("stampede_booking_seconds", ("med", "p(95)", "p(99)", "max")),
        "real_failed_rate": s.get("stampede_real_failed", "value"), "real_failed_count": failed, "requests": total,
        "graphql_failed_rate": s.get("graphql_failed", "value"), "hold_answered_rate": s.get("stampede_hold_answered", "value"),
        "errors_by_code": s.errors_by("code"), "errors_by_op": s.errors_by("op"), "per_op": per_op,
        "bad_payloads": c("stampede_bad_payload"), "hold_already_exists": c("stampede_hold_already_exists"),
    }


def sold_out_report(s, fans, limit_s=SOLD_OUT_WITHIN_S):
    """The epochs k6 recorded (last successful hold, last fan told, by how it was told) and the
    judgement against `limit_s`."""
    by_via = {v: s.get(f"stampede_sold_out_learned_epoch_ms{{via:{v}}}", "max") for v in VIA
              if s.count(f"stampede_sold_out_learned_epoch_ms{{via:{v}}}")}
    learned = max(by_via.values()) if by_via else s.get("stampede_sold_out_learned_epoch_ms", "max")
    hold_max = s.get("stampede_hold_ok_epoch_ms", "max")
    seatless = sum(n for k, n in fans.items() if k != "held")
    out = sold_out_learning(hold_max, learned, seatless, fans["sold_out"] + fans["lost"], limit_s)
    out.update(last_hold_epoch_ms=hold_max, last_told_epoch_ms=learned,
               last_told_after_last_hold_s_by_via={v: (e - hold_max) / 1000 if hold_max else None for v, e in by_via.items()})
    return out


def busy_report(s, counter, trend, no_hint, ops):
    """BUSY refusals: how many (by operation), their latency, and those without retryAfterMs."""
    return {"count": s.count(counter), "by_op": {op: s.count(f"{counter}{{op:{op}}}") for op in ops if s.count(f"{counter}{{op:{op}}}")},
            "latency_ms": s.latency(trend, ("med", "p(95)", "p(99)", "max")), "without_retry_after": s.count(no_hint)}


def server_metrics(prom, pg):
    return {
        "hold_transaction_p50_s_le": hist_quantile(prom, "hold_duration_seconds", 0.5),
        "hold_transaction_p95_s_le": hist_quantile(prom, "hold_duration_seconds", 0.95),
        "hold_transaction_p99_s_le": hist_quantile(prom, "hold_duration_seconds", 0.99),
        "hold_transaction_mean_ms": hist_mean_ms(prom, "hold_duration_seconds"),
        "holds_by_outcome": counter_by(prom, "holds_total", "outcome"),
        "skip_locked_misses": counter_sum(prom, "skip_locked_misses_total"),
        "db_retries": counter_by(prom, "db_retries_total", "reason"),
        "db_pool_wait_p99_s_le": hist_quantile(prom, "db_pool_wait_seconds", 0.99),
        "graphql_errors_total": counter_sum(prom, "graphql_errors_total"),
        "graphql_errors_by_code": counter_by(prom, "graphql_errors_total", "code"),
        "queue_admissions_total": counter_sum(prom, "queue_admissions_total"),
        "deadlocks": pg.get("deadlocks"), "xact_commit": pg.get("xact_commit"), "xact_rollback": pg.get("xact_rollback"),
    }


def load_model_data(ctx, users, seats, expected):
    per_vu = ctx.env_int("USERS_PER_VU", 10)
    return {"users": users, "seats": seats, "expected_holds": expected, "users_per_vu": per_vu,
            "vus": math.ceil(users / per_vu) if users else None, "mode": ctx.k6_env.get("MODE", "seat"),
            "max_attempts": ctx.env_int("MAX_ATTEMPTS", 3), "poll": ctx.k6_env.get("POLL", "hint"),
            "poll_seconds": float(ctx.k6_env.get("POLL_SECONDS", 2)), "admission": admission_text(ctx.server_env)}


def load_model_text(ctx, users):
    m = load_model_data(ctx, users, 0, 0)
    poll = (f"after each answer's `pollAfterSeconds` ({m['poll_seconds']:g} s without one)" if m["poll"] == "hint"
            else f"every {m['poll_seconds']:g} s")
    return (f"{users:,} fans = {m['vus']:,} k6 VUs × {m['users_per_vu']} fans, all starting together. Each fan: `enterQueue` → "
            f"`queueStatus` {poll} until ACTIVE → `concert {{ schedules }}` → `schedule {{ seats }}` → "
            f"{MODES.get(m['mode'], m['mode'])}; on SEAT_UNAVAILABLE it reloads the seat map and tries again (at most "
            f"{m['max_attempts']} holds). It stops when told SOLD_OUT (enterQueue, queueStatus or a hold) or when its map "
            f"shows no free seat; after BUSY it waits `retryAfterMs` and sends the same request again.")


def labels(r, expected):
    hl = r["hold_latency_ms"]
    return {
        ("stampede_hold_ms", "p(95)<500"): ("reservation (hold request) latency P95 < 500 ms (BUSY answers apart)", ms(hl.get("p(95)"))),
        ("stampede_hold_ms", "p(99)<1000"): ("hold latency P99 < 1 s (the locks are taken in it; the plan's lock "
                                             "acquisition P99 < 5 s)", ms(hl.get("p(99)"))),
        ("stampede_holds_ok", f"count=={expected}"): (f"exactly {expected} successful holds", f"{r['holds_ok']}"),
        ("stampede_real_failed", "rate<0.005"): ("errors other than SEAT_UNAVAILABLE / SOLD_OUT < 0.5 % (BUSY apart)",
                                                 f"{pct(r['real_failed_rate'])} ({n0(r['real_failed_count'])} of {r['requests']:,})"),
        ("stampede_hold_answered", "rate>0.999"): ("lock success > 99.9 % (hold answered held, SEAT_UNAVAILABLE or SOLD_OUT)",
                                                   pct(r["hold_answered_rate"])),
        ("stampede_fans_not_active", "count<1"): ("every fan was admitted or told SOLD_OUT", f"{r['fans']['not_active']:,} were not"),
    }


def result_rows(users, r):
    f, so, b = r["fans"], r["sold_out"], r["busy"]
    other_codes = {k: v for k, v in r["hold_errors_by_code"].items() if k != "TIMEOUT"}
    via = r["sold_out_by_via"]
    return [
        ["fans", f"{users:,}: **{f['held']:,} got a seat**, {f['sold_out']:,} told sold out ({counts(via)}), "
                 f"{f['lost']:,} lost every hold they tried, {f['failed']:,} stopped on a "
                 f"failure, {f['not_active']:,} neither admitted nor told"],
        ["reservation success", f"{r['holds_ok']} of {users:,} fans = {num(100 * r['holds_ok'] / max(1, users), 2)} % (plan: 50 of 10,000 = 0.5 %)"],
        ["hold attempts (answered)", f"{r['hold_attempts']:,}: held {r['holds_ok']}, SEAT_UNAVAILABLE {r['seat_unavailable']:,}, "
                                     f"SOLD_OUT {r['hold_sold_out']:,}, other errors {r['hold_other_errors']:,}"],
        ["failure breakdown of the holds (lock timeout vs already reserved)",
         f"already reserved (SEAT_UNAVAILABLE) {r['seat_unavailable']:,}; lock timeout (TIMEOUT) {r['lock_timeouts']}; "
         f"other {r['hold_other_errors'] - r['lock_timeouts']:,}" + (f" ({counts(other_codes)})" if other_codes else "")],
        ["hold latency, every answered attempt, P50 / P95 / P99 / max", lat_row(r["hold_latency_ms"])],
        ["hold latency, successful, P50 / P95 / P99 / max", lat_row(r["hold_ok_latency_ms"])],
        ["hold latency, SEAT_UNAVAILABLE, P50 / P95 / P99 / max", lat_row(r["hold_unavailable_latency_ms"])],
        ["hold from first send to answer, BUSY waits included, P50 / P95 / P99 / max", lat_row(r["hold_with_retries_ms"])],
        ["BUSY answers (retried after `retryAfterMs`; not failures)",
         f"{b['count']:,} ({counts(b['by_op'])}); latency P50 / P95 / P99 / max {lat_row(b['latency_ms'])}; "
         f"without `retryAfterMs` {b['without_retry_after']:,}"],
        ["when the seats went (since the start)", f"first {secs(r['first_hold_at_s'])}, last {secs(r['last_hold_at_s'])}"],
        ["last fan without a seat told, after the last seat went", f"{secs(so['lag_s'])} (by how it was told: "
         + (", ".join(f"{v} {secs(x)}" for v, x in so["last_told_after_last_hold_s_by_via"].items()) or "none") + ")"],
        ["poll hints (`pollAfterSeconds`) min / P50 / max; WAITING answers without one",
         f"{' / '.join(secs(r['poll_after_seconds'].get(k)) for k in ('min', 'med', 'max'))}; {r['poll_hint_missing']:,}"],
        ["queue: enter → ACTIVE seen, P50 / P95 / max", " / ".join(secs(r["activation_seconds"].get(k)) for k in ("med", "p(95)", "max"))],
        ["booking: ACTIVE → final answer, P50 / P95 / P99 / max", " / ".join(secs(r["booking_seconds"].get(k)) for k in ("med", "p(95)", "p(99)", "max"))],
        ["real failures (judged)", f"{n0(r['real_failed_count'])} of {r['requests']:,} requests not answered BUSY ({pct(r['real_failed_rate'])})"],
        ["every error answer incl. SEAT_UNAVAILABLE, SOLD_OUT, BUSY (`graphql_failed`, not judged)", pct(r["graphql_failed_rate"], 2)],
        ["errors by code", counts(r["errors_by_code"], code=True)],
        ["errors by operation", counts(r["errors_by_op"])],
        ["malformed answers / HOLD_ALREADY_EXISTS", f"{r['bad_payloads']} / {r['hold_already_exists']}"],
    ]


def op_table(per_op):
    rows = [[op, f"{d['requests']:,}", *(ms(d["latency_ms"].get(k)) for k in ("med", "p(95)", "p(99)", "max")),
             in_server(d), pct(d["real_failed_rate"]), f"{d['busy']:,}"] for op, d in per_op.items()]
    return Table(["operation", "requests", "P50", "P95", "P99", "max", "in the server P50 / P95 / P99", "real failures", "BUSY"],
                 rows, "Requests by operation (P50 to max: k6's latency; in the server: `graphql_request_duration_seconds`, "
                 "the bucket holding each percentile):")



def server_rows(sv):
    return [
        ["hold transaction time in the server (`hold_duration_seconds`, after the pool checkout) mean / P50 / P95 / P99",
         f"{num(sv['hold_transaction_mean_ms'], 1, ' ms')} / " + " / ".join(
             le_ms(sv[f"hold_transaction_{q}_s_le"]) for q in ("p50", "p95", "p99"))],
        ["holds by outcome (`holds_total`)", counts(sv["holds_by_outcome"])],
        ["lock contention: holds that could not lock every seat (`skip_locked_misses_total`)", n0(sv["skip_locked_misses"])],
        ["fans admitted by the queue (`queue_admissions_total`)", n0(sv["queue_admissions_total"])],
        admission_row(sv["admission"]),
        ["error answers by code, server side (`graphql_errors_total`)", counts(sv["graphql_errors_by_code"], code=True)],
        retries_row(sv["db_retries"]),
        ["database pool wait P99 (`db_pool_wait_seconds`)", le_ms(sv["db_pool_wait_p99_s_le"])],
    ] + pg_rows(sv)
