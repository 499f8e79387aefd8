"""Scenario 2, queue activation wave: N fans enter the queue at once and poll until ACTIVE, either
when each answer's pollAfterSeconds says (--poll hint, the default: docs/results/queue-wave) or
every 2 s as the plan says (--poll fixed: docs/results/queue-wave-fixed). Goal: 10 % -> 100 % of
the fans ACTIVE within 30 s; polling P99 < 200 ms."""

import math

from loadtest.fmt import in_server, lat_row, le_s, ms, n0, num, pct, secs
from loadtest.metrics import bucket_quantile, counter_sum, hist_quantile, server_latency
from loadtest.report import Report, Table, resources_of
from loadtest.scenarios.base import Scenario, kv_table, queue_settings, section
from loadtest.util import Fatal, positive_int, read_json

ORDER = ("queue_activation_seconds", "http_req_duration{op:queueStatus}", "queue_real_failed", "queue_users_not_activated")


class QueueWave(Scenario):
    name = "queue-wave"
    title = "Load test: queue activation wave (scenario 2)"
    script = "k6-graphql/queue-wave.js"
    takes = ("users", "poll")
    queue_concert = 1
    checks_data = False

    @property
    def report_name(self):
        return self.name if self.k6_env["POLL"] == "hint" else f"{self.name}-fixed"

    def configure(self):
        users = positive_int("--users", self.opts.get("users") or 10000)
        poll = self.opts.get("poll") or "hint"
        if poll not in ("hint", "fixed"):
            raise Fatal("--poll takes hint or fixed")
        self.k6_env = {"USERS": users, "CONCERT_ID": 1, "POLL": poll}
        # Admit at most 400/s (adaptive under it: nobody books here, so nothing should hold it
        # back) with a cap above the crowd: 10,000 fans are all ACTIVE ~25 s after the wave.
        # Grace 60 s: a fan polling every 2 s (or as hinted, 1-2 s while WAITING) is never dropped;
        # the active TTL outlives the run.
        self.server_env = queue_settings(400, max(users, 10000), 60, 900)

    def report(self, ctx):
        s, env = ctx.summary, ctx.k6_env
        users, per_vu, poll = ctx.env_int("USERS", 0), ctx.env_int("USERS_PER_VU", 10), float(env.get("POLL_SECONDS", 2))
        mode = env.get("POLL", "fixed")  # runs from before the switch polled every POLL_SECONDS
        res = results(s)
        store = store_view(ctx.samples, users)
        ramp = res["ramp_k6"] if res["ramp_k6"] is not None else store.get("ramp_10_to_100pct_s")
        goal_ok = ramp is not None and ramp <= 30 and res["integrity"]["not_activated"] == 0
        resources = legacy_resources(ctx.samples)
        redis = redis_store_stats(ctx.run_dir)
        server = server_metrics(ctx.prom)
        capacity = cost(ctx, res, users, poll if mode == "fixed" else None)
        windows = poll_windows(s)
        how = (f"every {poll:g} s (the plan's fixed interval)" if mode == "fixed"
               else f"after each answer's `pollAfterSeconds` ({poll:g} s when an answer has none)")
        load_model = (f"{users:,} fans = {math.ceil(users / per_vu):,} k6 VUs × {per_vu} fans; each VU enters its fans "
                      f"together and polls the waiting ones {how}, those due together in one parallel `http.batch`")
        data = {"load_model": {"users": users, "users_per_vu": per_vu, "vus": math.ceil(users / per_vu) if users else None,
                               "poll": mode, "poll_seconds": poll},
                "goal_ramp_10_to_100pct_within_30s": {"measured_s": ramp, "passed": goal_ok},
                "results": {k: v for k, v in res.items() if k != "ramp_k6"}, "store": store, "redis": redis,
                "server_metrics": server, "resources": resources, "cost_and_capacity": capacity, "poll_windows": windows}
        return Report(
            title=self.title, load_model=load_model, data=data,
            headline=(f"{users:,} fans entered at once and polled {'every ' + format(poll, 'g') + ' s' if mode == 'fixed' else 'as hinted'}; "
                      f"{n0(res['users_active'])} reached "
                      f"ACTIVE, activation P95 {secs(res['activation_seconds']['p(95)'])}, poll P99 "
                      f"{ms(res['poll_latency_ms']['p(99)'])}, failed requests {pct(res['real_failed_rate'])}, BUSY {n0(res['busy_total'])}."),
            plan=s.judged(ORDER), labels=labels(res), resources=resources_of(ctx.samples, lambda r: (r.get("waiting") or 0) > 0),
            resources_window="while fans waited",
            goals=[("goal: 10 % → 100 % of fans ACTIVE within 30 s (1,000 → 10,000 for 10,000 fans)", secs(ramp), goal_ok)],
            sections=[section("Results", kv_table(result_rows(users, res))),
                      section("Queue store (Redis) and server view", kv_table(store_rows(redis, store, server)),
                              window_table(windows))])


def results(s):
    lat = s.latency
    entered, wave, wave99 = s.get("queue_entered", "count", 0), s.get("queue_enter_done_seconds", "max"), s.get("queue_enter_done_seconds", "p(99)")
    active, last, first10 = s.get("queue_users_active", "count", 0), s.get("queue_active_at_seconds", "max"), s.get("queue_active_at_seconds", "p(10)")
    duration = (s.state.get("testRunDurationMs", 0) / 1000) if s.state else None
    if not duration and s.get("http_reqs", "rate"):
        duration = s.get("http_reqs", "count", 0) / s.get("http_reqs", "rate")
    by_code = s.errors_by("code")
    total_errors = s.get("graphql_errors", "count", 0)
    return {
        "entered": entered, "enter_wave_seconds": wave, "entered_per_second": entered / wave if entered and wave else None,
        "enter_wave_p99_seconds": wave99, "entered_per_second_first_99pct": 0.99 * entered / wave99 if entered and wave99 else None,
        "enter_latency_ms": lat("http_req_duration{op:enterQueue}"), "users_active": active,
        "last_active_at_seconds": last, "active_10pct_at_seconds": first10,
        "admissions_per_second": active / last if active and last else None,
        "activation_seconds": lat("queue_activation_seconds", ("med", "p(90)", "p(95)", "p(99)", "max", "min")),
        "poll_latency_ms": lat("http_req_duration{op:queueStatus}"),
        "requests": {"enterQueue": s.get("http_reqs{op:enterQueue}", "count", 0), "queueStatus": s.get("http_reqs{op:queueStatus}", "count", 0)},
        "real_failed_rate": s.get("queue_real_failed", "value", s.get("queue_real_failed", "rate")),
        "real_failed_count": s.get("queue_real_failed", "passes"),
        "busy_total": s.get("queue_busy{op:enterQueue}", "count", 0) + s.get("queue_busy{op:queueStatus}", "count", 0),
        "busy_by_op": {"enterQueue": s.get("queue_busy{op:enterQueue}", "count", 0), "queueStatus": s.get("queue_busy{op:queueStatus}", "count", 0)},
        "busy_latency_ms": lat("queue_busy_ms"),
        "test_duration_seconds": duration, "graphql_failed_rate": s.get("graphql_failed", "value", s.get("graphql_failed", "rate")),
        "graphql_failed_count": s.get("graphql_failed", "passes"), "graphql_errors_total": total_errors,
        "errors_by_code": by_code, "errors_unlisted": int(total_errors) - sum(by_code.values()), "errors_by_op": s.errors_by("op"),
        "integrity": {"position_regressions": s.count("queue_position_regressions"),
                      "expired_while_waiting": s.count("queue_expired_while_waiting"),
                      "bad_payloads": s.count("queue_bad_payload"), "not_activated": s.count("queue_users_not_activated")},
        "eta_error_seconds": lat("queue_eta_error_seconds", ("med", "p(95)")),
        "enter_position_p50": s.get("queue_enter_position", "med"), "enter_eta_p50_seconds": s.get("queue_enter_eta_seconds", "med"),
        "ramp_k6": (last - first10) if last is not None and first10 is not None else None,
        "polls_per_fan": s.get("http_reqs{op:queueStatus}", "count", 0) / active if active else None,
        "poll_after_seconds": lat("queue_poll_after_seconds", ("min", "med", "p(95)", "max", "count")),
        "poll_hint_missing": s.count("queue_poll_hint_missing"), "sold_out_answers": s.count("queue_sold_out"),
    }


def store_view(rows, users):
    """The store's view, one sample a second: when ACTIVE passed 10 % and reached 100 %."""
    started = next((r["t"] for r in rows if (r.get("waiting") or 0) + (r.get("active") or 0) > 0), None)
    if started is None or not users:
        return {}
    t10 = next((r["t"] for r in rows if (r.get("active") or 0) >= 0.1 * users), None)
    t100 = next((r["t"] for r in rows if (r.get("active") or 0) >= users), None)
    store = {"first_sample_with_queue_s": started,
             "active_10pct_after_s": None if t10 is None else round(t10 - started, 1),
             "active_100pct_after_s": None if t100 is None else round(t100 - started, 1),
             "ramp_10_to_100pct_s": None if t10 is None or t100 is None else round(t100 - t10, 1),
             "peak_waiting": int(max((r.get("waiting") or 0) for r in rows)), "final_active": int(rows[-1].get("active") or 0)}
    if t10 is not None and t100 is not None and t100 > t10:
        store["admissions_per_s_10_to_100pct"] = round(0.9 * users / (t100 - t10), 1)
    return store


def legacy_resources(rows):
    """Peaks, and averages while anyone waited (this report's own field names)."""
    res = resources_of(rows, lambda r: (r.get("waiting") or 0) > 0)
    out = {}
    for key in ("server_cpu", "k6_cpu", "redis_cpu", "machine_busy"):
        out[f"{key}_peak_pct"] = res[f"{key}_peak"]
        out[f"{key}_avg_while_waiting_pct"] = res[f"{key}_avg"]
    out.update(server_rss_peak_mb=res["server_rss_peak_mb"], k6_rss_peak_mb=res["k6_rss_peak_mb"],
               build_processes_peak=res["build_processes_peak"], samples=len(rows))
    return out


def server_metrics(prom):
    total = lambda name: sum(v for _, v in prom.get(name, []))  # noqa: E731
    return {
        "queue_wait_p50_s_le": hist_quantile(prom, "queue_wait_seconds", 0.5),
        "queue_wait_p95_s_le": hist_quantile(prom, "queue_wait_seconds", 0.95),
        "queue_wait_p99_s_le": hist_quantile(prom, "queue_wait_seconds", 0.99),
        "queue_admissions_total": counter_sum(prom, "queue_admissions_total"),
        "in_server": server_latency({"enterQueue": {}, "queueStatus": {}}, prom),
        "queue_entries_total": counter_sum(prom, "queue_entries_total"),
        "queue_abandoned_total": total("queue_abandoned_total"), "queue_expired_total": total("queue_expired_total"),
        "queue_tick_failures_total": total("queue_tick_failures_total"), "graphql_errors_total": total("graphql_errors_total"),
    }


def redis_store_stats(run_dir):
    """Redis commands and latency during the run (after - before)."""
    before = read_json(run_dir / "redis-stats.before.json", {}) or {}
    after = read_json(run_dir / "redis-stats.after.json", {}) or {}
    cmds = {}
    for name, (calls, usec) in (after.get("commandstats") or {}).items():
        c0, u0 = (before.get("commandstats") or {}).get(name, (0, 0))
        if calls - c0 > 0:
            cmds[name] = {"calls": calls - c0, "usec_per_call": round((usec - u0) / (calls - c0), 2)}
    hist = {}
    for name in ("evalsha", "eval", "zadd", "publish", "hmget", "smembers"):
        a = {int(k): v for k, v in ((after.get("latency") or {}).get(name) or {}).get("histogram_usec", {}).items()}
        b = {int(k): v for k, v in ((before.get("latency") or {}).get(name) or {}).get("histogram_usec", {}).items()}
        cum = _cumulative_diff(a, b)
        total = max(cum.values(), default=0)
        if total > 0:
            hist[name] = {"calls": total, "p50_usec_le": bucket_quantile(cum, 0.5), "p99_usec_le": bucket_quantile(cum, 0.99),
                          "max_usec_le": bucket_quantile(cum, 1.0)}
    return {"commands": cmds, "latency": hist}


def _cumulative_diff(after, before):
    """after - before of two cumulative histograms whose bounds differ (a missing bound carries
    the count of the bound below it)."""
    out, last_a, last_b = {}, 0, 0
    for bound in sorted(set(after) | set(before)):
        last_a, last_b = after.get(bound, last_a), before.get(bound, last_b)
        out[bound] = last_a - last_b
    return out


def cost(ctx, res, users, poll):
    """CPU per request (integral of the 1 s CPU samples / requests) and the ceilings it implies."""
    rows = ctx.samples
    total = sum(res["requests"].values())
    if not rows or not total:
        return {}
    per_sample = rows[-1]["t"] / len(rows)
    us = {k: sum((r.get(k) or 0) for r in rows) / 100 * per_sample / total * 1e6 for k in ("server_cpu", "k6_cpu", "redis_cpu")}
    if not us["server_cpu"] or not us["k6_cpu"]:
        return {}
    cores = ctx.machine["nproc"] or 1
    return {"server_cpu_us_per_request": round(us["server_cpu"]), "k6_cpu_us_per_request": round(us["k6_cpu"]),
            "redis_cpu_us_per_request": round(us["redis_cpu"]),
            "ceiling_req_per_s_shared": round(cores * 1e6 / sum(us.values())),
            "ceiling_req_per_s_server_alone": round(cores * 1e6 / (us["server_cpu"] + us["redis_cpu"])),
            "offered_poll_req_per_s": round(users / poll) if poll else None,
            "polls_per_s_over_the_run": round(res["requests"]["queueStatus"] / rows[-1]["t"]) if rows[-1]["t"] else None}


def poll_windows(s):
    out = []
    for w in s.windows("http_req_duration{op:queueStatus,"):
        name = f"http_req_duration{{op:queueStatus,window:w{w}}}"
        out.append({"window": int(w), "from_s": int(w) * 10, "polls": int(s.get(name, "count")), "p50_ms": s.get(name, "med"),
                    "p99_ms": s.get(name, "p(99)"), "failed_rate": s.get(f"graphql_failed{{window:w{w}}}", "value")})
    return out


def labels(res):
    return {
        ("queue_activation_seconds", "p(95)<60"): ("activation time P95 < 60 s", secs(res["activation_seconds"]["p(95)"])),
        ("http_req_duration{op:queueStatus}", "p(99)<200"): ("polling P99 < 200 ms", ms(res["poll_latency_ms"]["p(99)"])),
        ("queue_real_failed", "rate<0.005"): ("error rate < 0.5 % (BUSY apart: retried after its hint)", pct(res["real_failed_rate"])),
        ("queue_users_not_activated", "count<1"): ("every fan reaches ACTIVE", f"{res['integrity']['not_activated']:,} did not"),
    }


def result_rows(users, r):
    el, pl, act, integ = r["enter_latency_ms"], r["poll_latency_ms"], r["activation_seconds"], r["integrity"]
    errs = ", ".join(f"`{c}` {n:,}" for c, n in r["errors_by_code"].items()) or "none"
    if r["errors_unlisted"] > 0:
        errs += f", other codes {r['errors_unlisted']:,}"
    rows = [
        ["fans", f"{users:,}"],
        ["entered (token received)", f"{n0(r['entered'])} in {secs(r['enter_wave_seconds'])} → **{num(r['entered_per_second'], 0)} entries/s** "
         f"(the first 99 % in {secs(r['enter_wave_p99_seconds'])} → {num(r['entered_per_second_first_99pct'], 0)}/s)"],
        ["enterQueue latency P50 / P95 / P99 / max", " / ".join(ms(el[k]) for k in ("med", "p(95)", "p(99)", "max"))],
        ["reached ACTIVE", f"{n0(r['users_active'])}, the last {secs(r['last_active_at_seconds'])} after the start"],
        ["ACTIVE issuance (ACTIVE fans / time to the last)", f"**{num(r['admissions_per_second'], 0)} /s**"],
        ["activation time (enter → first ACTIVE seen) P50 / P95 / P99 / max", " / ".join(secs(act[k]) for k in ("med", "p(95)", "p(99)", "max"))],
        ["queueStatus latency P50 / P95 / P99 / max", " / ".join(ms(pl[k]) for k in ("med", "p(95)", "p(99)", "max"))],
        ["requests", f"{n0(r['requests']['enterQueue'])} enterQueue + {n0(r['requests']['queueStatus'])} queueStatus in {secs(r['test_duration_seconds'])}"],
        ["failed requests (HTTP ≠ 200 or `errors`; BUSY apart)", f"{n0(r['real_failed_count'])} ({pct(r['real_failed_rate'])})"],
        ["BUSY answers (the waiting room refusing at once, retried after `retryAfterMs`)",
         f"{n0(r['busy_total'])} (enterQueue {n0(r['busy_by_op']['enterQueue'])}, queueStatus {n0(r['busy_by_op']['queueStatus'])}); latency P50 / P95 / P99 / max "
         + lat_row(r["busy_latency_ms"])],
        ["every error answer, BUSY included (`graphql_failed`, not judged)", f"{n0(r['graphql_failed_count'])} ({pct(r['graphql_failed_rate'])})"],
        ["errors by code", errs],
        ["queue integrity", f"position went up {integ['position_regressions']:,} times; EXPIRED while waiting "
         f"{integ['expired_while_waiting']:,}; SOLD_OUT answers {r['sold_out_answers']:,}; malformed answers {integ['bad_payloads']:,}"],
        ["polls per fan that reached ACTIVE", num(r["polls_per_fan"], 1)],
        ["poll hints while WAITING (`pollAfterSeconds`) min / P50 / P95 / max; WAITING answers without one",
         " / ".join(secs(r["poll_after_seconds"].get(k)) for k in ("min", "med", "p(95)", "max")) + f"; {r['poll_hint_missing']:,}"],
        ["ETA error (actual − estimatedWaitSeconds at entry) P50 / P95", f"{secs(r['eta_error_seconds']['med'])} / {secs(r['eta_error_seconds']['p(95)'])}"],
        ["place and ETA in the enterQueue answer, P50", f"place {n0(r['enter_position_p50'])}, ETA {secs(r['enter_eta_p50_seconds'])}"],
    ]
    if r["errors_by_op"]:
        rows.insert(10, ["errors by operation", ", ".join(f"{o} {n:,}" for o, n in r["errors_by_op"].items())])
    return rows


def store_rows(redis, store, server):
    rows = [[f"Redis `{name}` during the run (all clients)", f"{h['calls']:,} calls, P50 ≤ {h['p50_usec_le']} µs, "
             f"P99 ≤ {h['p99_usec_le']} µs, max ≤ {h['max_usec_le']} µs"] for name, h in redis["latency"].items()]
    top = sorted(redis["commands"].items(), key=lambda x: -x[1]["calls"])[:6]
    if top:
        rows.append(["Redis commands (incl. inside scripts)", ", ".join(f"{n} {c['calls']:,} ({c['usec_per_call']} µs)" for n, c in top)])
    if store:
        rows.append(["store timeline (1 s samples)", f"peak waiting {store['peak_waiting']:,}; 10 % ACTIVE after "
                     f"{secs(store['active_10pct_after_s'])}, 100 % after {secs(store['active_100pct_after_s'])}; "
                     f"10 % → 100 % at {num(store.get('admissions_per_s_10_to_100pct'), 0)} /s"])
    rows.append(["server: queue wait (enter → admitted) P50 / P95 / P99 (`queue_wait_seconds` bucket bounds)",
                 " / ".join(le_s(server[k]) for k in ("queue_wait_p50_s_le", "queue_wait_p95_s_le", "queue_wait_p99_s_le"))])
    for op, d in server.get("in_server", {}).items():
        rows.append([f"server: `{op}` in the server P50 / P95 / P99 (`graphql_request_duration_seconds` bucket bounds)",
                     in_server(d)])
    rows.append(["server: entries / admissions / abandoned / expired / tick failures",
                 " / ".join(n0(server[k]) for k in ("queue_entries_total", "queue_admissions_total", "queue_abandoned_total",
                                                    "queue_expired_total", "queue_tick_failures_total"))])
    return rows


def window_table(windows):
    rows = [[str(w["from_s"]), f"{w['polls']:,}", ms(w["p50_ms"]), ms(w["p99_ms"]), pct(w["failed_rate"], 1)] for w in windows]
    return Table(["from (s)", "polls", "P50", "P99", "failed (all ops)"], rows,
                 "Polling over time (10 s windows by when the poll round started):")
