#!/usr/bin/env python3
"""Writes docs/results/<scenario>.md and .json from one scripts/load run directory.

  report.py queue-wave --run-dir .run/load/queue-wave-<time> --out docs/results/queue-wave \
      --command "scripts/load queue-wave" --k6-exit 0 --started ... --finished ... --k6-version ...

Scenarios: queue-wave, seat-stampede, payments (the last two also read sql-checks.tsv,
pgstat.before/after and, for payments, the prepare phase's artefacts from the run directory).

Exit status: 0 when every threshold and goal passed, 1 when one failed. Standard library only.
Add a scenario: a function report_<name>(ctx) returning (markdown, json-able dict, passed) and an
entry in REPORTS.
"""

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys

# ------------------------------------------------------------------------------------------------
# inputs


def read(path, default=None):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return default


def machine():
    cpuinfo = read("/proc/cpuinfo", "")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    meminfo = read("/proc/meminfo", "")
    mem = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "cpu_model": model.group(1).strip() if model else "unknown",
        "kernel": platform.release(),
    }


def git(*args, cwd):
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def source_state(root):
    head = git("rev-parse", "--short", "HEAD", cwd=root)
    dirty = git("status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock", "migrations", cwd=root)
    return {"commit": head, "uncommitted_server_changes": bool(dirty)}


def samples(path):
    text = read(path, "")
    lines = [l for l in text.splitlines() if l.strip()]
    if not lines:
        return []
    header = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        cells = line.split("\t")
        if len(cells) != len(header):
            continue
        row = {}
        for k, v in zip(header, cells):
            try:
                row[k] = float(v)
            except ValueError:
                row[k] = None
        rows.append(row)
    return rows


def commandstats(text):
    stats = {}
    for m in re.finditer(r"^cmdstat_([^:]+):calls=(\d+),usec=(\d+)", text or "", re.M):
        stats[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return stats


def redis_store_stats(run_dir):
    before = commandstats(read(os.path.join(run_dir, "redis-commandstats.before")))
    after = commandstats(read(os.path.join(run_dir, "redis-commandstats.after")))
    cmds = {}
    for name, (calls, usec) in after.items():
        c0, u0 = before.get(name, (0, 0))
        if calls - c0 > 0:
            cmds[name] = {"calls": calls - c0, "usec_per_call": round((usec - u0) / (calls - c0), 2)}
    hist = {}
    try:
        hb = json.loads(read(os.path.join(run_dir, "redis-latency.before.json"), "{}") or "{}")
        ha = json.loads(read(os.path.join(run_dir, "redis-latency.after.json"), "{}") or "{}")
    except ValueError:
        hb, ha = {}, {}
    for name in ("evalsha", "eval", "zadd", "publish", "hmget", "smembers"):
        if name not in ha:
            continue
        a = {int(k): v for k, v in ha[name].get("histogram_usec", {}).items()}
        b = {int(k): v for k, v in hb.get(name, {}).get("histogram_usec", {}).items()}
        # Cumulative counts per power-of-two upper bound (usec): diff, then read percentiles.
        bounds = sorted(set(a) | set(b))
        cum, last_a, last_b = [], 0, 0
        for bound in bounds:
            last_a = a.get(bound, last_a)
            last_b = b.get(bound, last_b)
            cum.append((bound, last_a - last_b))
        total = cum[-1][1] if cum else 0
        if total <= 0:
            continue

        def pct(p):
            for bound, c in cum:
                if c >= p * total:
                    return bound
            return cum[-1][0]

        hist[name] = {"calls": total, "p50_usec_le": pct(0.5), "p99_usec_le": pct(0.99), "max_usec_le": pct(1.0)}
    return {"commands": cmds, "latency": hist}


def prometheus(text):
    """name -> list of (labels dict, value)."""
    out = {}
    for line in (text or "").splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)$", line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        try:
            value = float(m.group(4))
        except ValueError:
            continue
        out.setdefault(m.group(1), []).append((labels, value))
    return out


def histogram_quantile(prom, name, q, match=None):
    buckets = []
    for labels, value in prom.get(name + "_bucket", []):
        if match and any(labels.get(k) != v for k, v in match.items()):
            continue
        le = labels.get("le")
        buckets.append((math.inf if le == "+Inf" else float(le), value))
    if not buckets:
        return None
    merged = {}
    for le, v in buckets:
        merged[le] = merged.get(le, 0) + v
    ordered = sorted(merged.items())
    total = ordered[-1][1]
    if total <= 0:
        return None
    finite = [le for le, _ in ordered if le != math.inf]
    for le, c in ordered:
        if c >= q * total:
            # Past the last finite bucket: say "> that bound" rather than nothing.
            return le if le != math.inf else f"> {finite[-1]:g}" if finite else None
    return None


def server_log_summary(path, top=8):
    """Counts of the server's WARN/ERROR log lines by message (ANSI colours, timestamps and
    backtraces stripped), and the log's size."""
    counts = {}
    size = 0
    try:
        size = os.path.getsize(path)
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = re.sub(r"\x1b\[[0-9;]*m", "", line)
                m = re.match(r"^\S+Z\s+(WARN|ERROR)\s+(.*)$", line.rstrip())
                if m:
                    key = f"{m.group(1)} {m.group(2)[:160]}"
                    counts[key] = counts.get(key, 0) + 1
    except OSError:
        pass
    return {"bytes": size, "top": sorted(counts.items(), key=lambda x: -x[1])[:top]}


# ------------------------------------------------------------------------------------------------
# k6 summary helpers (legacy --summary-export format)


class Summary:
    def __init__(self, data):
        self.metrics = data.get("metrics", {})
        self.state = data.get("state", {})

    def get(self, name, stat, default=None):
        m = self.metrics.get(name)
        if not m:
            return default
        if stat in m:
            return m[stat]
        if "values" in m and stat in m["values"]:
            return m["values"][stat]
        return default

    def thresholds(self):
        """[(metric, expression, passed)]"""
        rows = []
        for name, m in self.metrics.items():
            for expr, value in (m.get("thresholds") or {}).items():
                # Legacy export: the value is true when the threshold FAILED.
                failed = value.get("ok") is False if isinstance(value, dict) else bool(value)
                rows.append((name, expr, not failed))
        return rows


def fmt(v, digits=1, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, float) and (math.isinf(v) or math.isnan(v)):
        return "n/a"
    if isinstance(v, (int,)) or (isinstance(v, float) and v.is_integer() and digits == 0):
        return f"{int(v):,}{unit}"
    return f"{v:,.{digits}f}{unit}"


def ms(v):
    return fmt(v, 1, " ms")


def secs(v):
    return fmt(v, 1, " s")


def le_s(v):
    if v is None:
        return "n/a"
    return f"{v} s" if isinstance(v, str) else f"≤ {v:g} s"


def pass_fail(ok):
    return "PASS" if ok else "**FAIL**"


# ------------------------------------------------------------------------------------------------
# queue-wave


def report_queue_wave(ctx):
    s = ctx["summary"]
    users = int(ctx["k6_env"].get("USERS", 0))
    per_vu = int(ctx["k6_env"].get("USERS_PER_VU", 10))
    poll = float(ctx["k6_env"].get("POLL_SECONDS", 2))
    rows = ctx["samples"]
    server_env = ctx["server_env"]

    entered = s.get("queue_entered", "count", 0)
    enter_wave = s.get("queue_enter_done_seconds", "max")
    active_users = s.get("queue_users_active", "count", 0)
    not_activated = s.get("queue_users_not_activated", "count", 0)
    last_active = s.get("queue_active_at_seconds", "max")
    first10 = s.get("queue_active_at_seconds", "p(10)")
    act = {k: s.get("queue_activation_seconds", k) for k in ("med", "p(90)", "p(95)", "p(99)", "max", "min")}
    poll_lat = {k: s.get("http_req_duration{op:queueStatus}", k) for k in ("med", "p(90)", "p(95)", "p(99)", "max")}
    enter_lat = {k: s.get("http_req_duration{op:enterQueue}", k) for k in ("med", "p(90)", "p(95)", "p(99)", "max")}
    polls = s.get("http_reqs{op:queueStatus}", "count", 0)
    enters = s.get("http_reqs{op:enterQueue}", "count", 0)
    failed_rate = s.get("graphql_failed", "value", s.get("graphql_failed", "rate"))
    failed_count = s.get("graphql_failed", "passes")
    total_errors = s.get("graphql_errors", "count", 0)
    # The legacy export has no run duration: count / rate of http_reqs gives it.
    duration_s = s.state.get("testRunDurationMs", 0) / 1000 if s.state else None
    if not duration_s and s.get("http_reqs", "rate"):
        duration_s = s.get("http_reqs", "count", 0) / s.get("http_reqs", "rate")

    errors_by_code = {}
    for name in s.metrics:
        m = re.match(r"^graphql_errors\{code:([^}]+)\}$", name)
        if m and (s.get(name, "count", 0) or 0) > 0:
            errors_by_code[m.group(1)] = int(s.get(name, "count"))
    errors_by_op = {}
    for name in s.metrics:
        m = re.match(r"^graphql_errors\{op:([^}]+)\}$", name)
        if m and (s.get(name, "count", 0) or 0) > 0:
            errors_by_op[m.group(1)] = int(s.get(name, "count"))
    unlisted = int(total_errors) - sum(errors_by_code.values())

    integrity = {
        "position_regressions": int(s.get("queue_position_regressions", "count", 0) or 0),
        "expired_while_waiting": int(s.get("queue_expired_while_waiting", "count", 0) or 0),
        "bad_payloads": int(s.get("queue_bad_payload", "count", 0) or 0),
        "not_activated": int(not_activated or 0),
    }

    entered_per_s = entered / enter_wave if entered and enter_wave else None
    # A few retried entries can stretch the wave: also give the rate of the first 99 %.
    enter_wave99 = s.get("queue_enter_done_seconds", "p(99)")
    entered_per_s99 = 0.99 * entered / enter_wave99 if entered and enter_wave99 else None
    admissions_per_s = active_users / last_active if active_users and last_active else None
    ramp_k6 = (last_active - first10) if last_active is not None and first10 is not None else None

    # The store's view, one sample per second: when did ACTIVE pass 10 % and reach 100 %?
    store = {}
    started = next((r["t"] for r in rows if (r.get("waiting") or 0) + (r.get("active") or 0) > 0), None)
    if started is not None and users:
        t10 = next((r["t"] for r in rows if (r.get("active") or 0) >= 0.1 * users), None)
        t100 = next((r["t"] for r in rows if (r.get("active") or 0) >= users), None)
        peak_waiting = max((r.get("waiting") or 0) for r in rows)
        store = {
            "first_sample_with_queue_s": started,
            "active_10pct_after_s": None if t10 is None else round(t10 - started, 1),
            "active_100pct_after_s": None if t100 is None else round(t100 - started, 1),
            "ramp_10_to_100pct_s": None if t10 is None or t100 is None else round(t100 - t10, 1),
            "peak_waiting": int(peak_waiting),
            "final_active": int(rows[-1].get("active") or 0),
        }
        if t10 is not None and t100 is not None and t100 > t10:
            store["admissions_per_s_10_to_100pct"] = round(0.9 * users / (t100 - t10), 1)

    def peak(key):
        vals = [r[key] for r in rows if r.get(key) is not None]
        return max(vals) if vals else None

    def avg(key, during=None):
        vals = [r[key] for r in rows if r.get(key) is not None and (during is None or during(r))]
        return sum(vals) / len(vals) if vals else None

    busy_window = lambda r: (r.get("waiting") or 0) > 0  # noqa: E731  while anyone waited
    resources = {
        "server_cpu_peak_pct": peak("server_cpu"),
        "server_cpu_avg_while_waiting_pct": avg("server_cpu", busy_window),
        "server_rss_peak_mb": (peak("server_rss_kb") or 0) / 1024,
        "k6_cpu_peak_pct": peak("k6_cpu"),
        "k6_cpu_avg_while_waiting_pct": avg("k6_cpu", busy_window),
        "k6_rss_peak_mb": (peak("k6_rss_kb") or 0) / 1024,
        "redis_cpu_peak_pct": peak("redis_cpu"),
        "redis_cpu_avg_while_waiting_pct": avg("redis_cpu", busy_window),
        "machine_busy_peak_pct": peak("machine_busy"),
        "machine_busy_avg_while_waiting_pct": avg("machine_busy", busy_window),
        "build_processes_peak": peak("build_procs"),
        "samples": len(rows),
    }

    prom = ctx["prometheus"]
    server_side = {
        "queue_wait_p50_s_le": histogram_quantile(prom, "queue_wait_seconds", 0.5),
        "queue_wait_p95_s_le": histogram_quantile(prom, "queue_wait_seconds", 0.95),
        "queue_wait_p99_s_le": histogram_quantile(prom, "queue_wait_seconds", 0.99),
        "queue_admissions_total": sum(v for _, v in prom.get("queue_admissions_total", [])) or None,
        "queue_entries_total": sum(v for _, v in prom.get("queue_entries_total", [])) or None,
        "queue_abandoned_total": sum(v for _, v in prom.get("queue_abandoned_total", [])),
        "queue_expired_total": sum(v for _, v in prom.get("queue_expired_total", [])),
        "queue_tick_failures_total": sum(v for _, v in prom.get("queue_tick_failures_total", [])),
        "graphql_errors_total": sum(v for _, v in prom.get("graphql_errors_total", [])),
    }
    redis = ctx["redis"]

    # CPU cost per request, from the 1 s samples (integral of CPU %) and the request count.
    total_requests = (enters or 0) + (polls or 0)
    cpu_s = {k: sum((r.get(k) or 0) for r in rows) / 100 * (rows[-1]["t"] / len(rows) if rows else 1)
             for k in ("server_cpu", "k6_cpu", "redis_cpu")}
    per_req = {k: (cpu_s[k] / total_requests * 1e6 if total_requests else None) for k in cpu_s}
    capacity = {}
    if per_req["server_cpu"] and per_req["k6_cpu"]:
        cores = ctx["machine"]["nproc"] or 1
        capacity = {
            "server_cpu_us_per_request": round(per_req["server_cpu"]),
            "k6_cpu_us_per_request": round(per_req["k6_cpu"]),
            "redis_cpu_us_per_request": round(per_req["redis_cpu"] or 0),
            "ceiling_req_per_s_shared": round(cores * 1e6 / (per_req["server_cpu"] + per_req["k6_cpu"] + (per_req["redis_cpu"] or 0))),
            "ceiling_req_per_s_server_alone": round(cores * 1e6 / (per_req["server_cpu"] + (per_req["redis_cpu"] or 0))),
            "offered_poll_req_per_s": round(users / poll) if poll else None,
        }

    windows = []
    for name in sorted(s.metrics):
        m = re.match(r"^http_req_duration\{op:queueStatus,window:w(\d+)\}$", name)
        if not m or not s.get(name, "count"):
            continue
        w = int(m.group(1))
        windows.append({
            "window": w,
            "from_s": w * 10,
            "polls": int(s.get(name, "count")),
            "p50_ms": s.get(name, "med"),
            "p99_ms": s.get(name, "p(99)"),
            "failed_rate": s.get(f"graphql_failed{{window:w{m.group(1)}}}", "value"),
        })
    windows.sort(key=lambda x: x["window"])
    serverlog = server_log_summary(os.path.join(ctx["run_dir"], "server.log"))

    thresholds = s.thresholds()
    order = ["queue_activation_seconds", "http_req_duration{op:queueStatus}", "graphql_failed",
             "queue_users_not_activated"]
    plan = sorted((t for t in thresholds if not re.search(r">=0$", t[1])),
                  key=lambda t: order.index(t[0]) if t[0] in order else len(order))
    # Scenario goal from the plan: activation takes the crowd from 1,000 to 10,000 active within
    # 30 s, i.e. from 10 % to 100 % of USERS.
    ramp = ramp_k6 if ramp_k6 is not None else store.get("ramp_10_to_100pct_s")
    goal_ok = ramp is not None and ramp <= 30 and integrity["not_activated"] == 0
    passed = all(ok for _, _, ok in plan) and goal_ok and ctx["k6_exit"] in (0, 99)
    k6_broke = ctx["k6_exit"] not in (0, 99)

    # ---- what limited it (from the numbers, not from hopes)
    notes = []
    rate_cfg = float(server_env.get("QUEUE_ADMIT_PER_SECOND", "0") or 0)
    store_rate = store.get("admissions_per_s_10_to_100pct")
    if rate_cfg and store_rate:
        if store_rate >= 0.85 * rate_cfg:
            notes.append(
                f"Activation time is set by the admission rate, by design: the admitter lets in "
                f"{rate_cfg:.0f}/s (QUEUE_ADMIT_PER_SECOND) and did ({store_rate:.0f}/s between 10 % and 100 % "
                f"ACTIVE in the store), so the last of {users:,} fans can be admitted no sooner than "
                f"~{users / rate_cfg:.0f} s after the wave, plus up to {poll:g} s until their next poll sees it."
            )
        else:
            notes.append(
                f"Admissions ran below the configured {rate_cfg:.0f}/s ({store_rate:.0f}/s between 10 % and "
                f"100 % ACTIVE in the store; see the timeline for stalls). Each tick admits a fixed budget "
                f"(rate × QUEUE_TICK_MS) and late ticks are skipped, not caught up, so every tick delayed by "
                f"the saturated CPU or Redis pool is admission capacity lost."
            )
    mb = resources["machine_busy_avg_while_waiting_pct"]
    if mb is not None:
        k6c = resources["k6_cpu_avg_while_waiting_pct"] or 0
        svc = resources["server_cpu_avg_while_waiting_pct"] or 0
        rc = resources["redis_cpu_avg_while_waiting_pct"] or 0
        notes.append(
            f"CPU: k6, the server and Redis share {ctx['machine']['nproc']} cores. While fans were waiting the "
            f"machine was {mb:.0f} % busy on average (peak {resources['machine_busy_peak_pct']:.0f} %): "
            f"server {svc:.0f} %, k6 {k6c:.0f} %, Redis {rc:.0f} % of one core"
            + (" — the load generator itself takes a large share, so latencies here are pessimistic "
               "for the server alone." if k6c > 0.5 * svc else ".")
        )
    if resources["build_processes_peak"]:
        notes.append(
            f"Other work compiled on this machine during the run (up to {resources['build_processes_peak']:.0f} "
            f"rustc/cargo/nextest/cc/ld processes seen in the 1 s samples): the numbers are skewed by it."
        )
    if enter_lat.get("max") and poll_lat.get("p(99)") is not None:
        notes.append(
            f"The entry burst is the hardest moment: {users:,} enterQueue calls arrive together "
            f"(enterQueue P99 {ms(enter_lat.get('p(99)'))}, max {ms(enter_lat.get('max'))}; the wave took "
            f"{secs(enter_wave)}), then {users / poll:,.0f} polls/s are offered "
            f"(queueStatus P99 {ms(poll_lat.get('p(99)'))})."
        )
    ev = redis["latency"].get("evalsha")
    if ev:
        notes.append(
            f"Queue store: {ev['calls']:,} Lua script calls (enter/status/tick) in Redis, P50 ≤ "
            f"{ev['p50_usec_le']} µs, P99 ≤ {ev['p99_usec_le']} µs inside Redis; Redis peaked at "
            f"{fmt(resources['redis_cpu_peak_pct'], 0)} % of one core, far from a single-node limit at this load."
        )
    waiting_rows = [r for r in rows if (r.get("waiting") or 0) > 0]
    lulls = [r for r in waiting_rows if (r.get("machine_busy") or 0) < 25]
    if len(lulls) >= max(2, 0.15 * len(waiting_rows)):
        notes.append(
            f"Polls arrive bunched, not evenly: 99 % of the fans got their tokens within {secs(enter_wave99)}, so every "
            f"{poll:g} s most of the waiting fans poll within about a second. {len(lulls)} of the "
            f"{len(waiting_rows)} one-second samples while fans waited were under 25 % busy, the others "
            f"{sum(r.get('machine_busy') or 0 for r in waiting_rows if r not in lulls) / max(1, len(waiting_rows) - len(lulls)):.0f} % "
            f"on average: the P99 is made in these bursts, not by the average load."
        )
    eta_med = s.get("queue_eta_error_seconds", "med")
    peak_rate = max((r.get("observed_rate") or 0) for r in rows) if rows else 0
    if eta_med is not None and eta_med > 2 * poll:
        notes.append(
            f"estimatedWaitSeconds was optimistic: fans waited {secs(eta_med)} longer than the ETA in their "
            f"enterQueue answer (median; P95 {secs(s.get('queue_eta_error_seconds', 'p(95)'))}), which is more than "
            f"the ≤ {poll:g} s poll delay and the entry latency explain."
            + (f" The server's observed admission rate, the ETA's basis, peaked at {peak_rate:,.0f}/s in the "
               f"samples against {rate_cfg:.0f}/s configured and achieved." if peak_rate > 1.5 * (rate_cfg or 1e9) else "")
        )
    if capacity:
        notes.append(
            f"Cost per request (CPU integral / requests): server ≈ {capacity['server_cpu_us_per_request']} µs, "
            f"k6 ≈ {capacity['k6_cpu_us_per_request']} µs, Redis ≈ {capacity['redis_cpu_us_per_request']} µs. "
            f"On {ctx['machine']['nproc']} shared cores that caps this setup at ≈ {capacity['ceiling_req_per_s_shared']:,} req/s "
            f"(≈ {capacity['ceiling_req_per_s_server_alone']:,} req/s if the server and Redis had the cores to "
            f"themselves), against {capacity['offered_poll_req_per_s']:,} polls/s offered by {users:,} fans "
            f"polling every {poll:g} s plus the entry burst."
        )
    if errors_by_code:
        unavailable = [f"{n:,}× “{msg.split(' ', 1)[1]}”" for msg, n in serverlog["top"] if "unavailable" in msg]
        notes.append(
            "Errors: " + ", ".join(f"{c} {n:,}" for c, n in errors_by_code.items())
            + (". The server log says why: " + "; ".join(unavailable) if unavailable else "")
            + ". `redis: Timed out in bb8` is the Redis pool's 2 s checkout timeout: with the CPU saturated, "
              "requests waited for one of the REDIS_POOL_SIZE connections longer than that and were answered "
              "QUEUE_UNAVAILABLE instead of queueing further."
            if any("bb8" in m for m, _ in serverlog["top"]) else
            "Errors: " + ", ".join(f"{c} {n:,}" for c, n in errors_by_code.items()) + " (see the server log section)."
        )
    tick_failures = server_side.get("queue_tick_failures_total") or 0
    if tick_failures:
        notes.append(
            f"The admitter shares the Redis pool with the requests: {tick_failures:.0f} admission ticks failed "
            f"(pool checkout timeout) while requests flooded the pool, and each failed tick is a tick with no "
            f"admissions."
        )
    pings = redis["commands"].get("ping", {}).get("calls", 0)
    evals = redis["commands"].get("evalsha", {}).get("calls", 0)
    if evals and pings >= 0.8 * evals:
        notes.append(
            f"Redis saw {pings:,} PINGs for {evals:,} script calls: the pool tests every connection on checkout "
            f"(bb8 `test_on_check_out`, on by default), one extra round trip per queue operation."
        )
    if k6_broke:
        notes.append(f"k6 exited with status {ctx['k6_exit']} (not a threshold failure): see k6.log.")

    # ---- markdown
    m = ctx["machine"]
    md = []
    md.append("# Load test: queue activation wave (scenario 2)\n")
    md.append(
        f"**Result: {'PASS' if passed else 'FAIL'}** — {users:,} fans entered at once and polled every "
        f"{poll:g} s; {int(active_users):,} reached ACTIVE, activation P95 {secs(act['p(95)'])}, "
        f"poll P99 {ms(poll_lat['p(99)'])}, failed requests {fmt((failed_rate or 0) * 100, 3)} %.\n"
    )
    md.append("## Run\n")
    md.append("| | |\n|---|---|")
    md.append(f"| date (UTC) | {ctx['started']} → {ctx['finished']} |")
    md.append(f"| command | `{ctx['command']}` |")
    md.append(f"| k6 | `{ctx['k6_cmd']}` ({ctx['k6_version']}) |")
    md.append(f"| machine | {m['nproc']} vCPU ({m['cpu_model']}), {m['memory_gib']} GiB RAM, Linux {m['kernel']} |")
    src = ctx["source"]
    md.append(
        f"| server | release build of `{src['commit']}`"
        + (" plus uncommitted changes in the working tree" if src["uncommitted_server_changes"] else "")
        + "; PostgreSQL, Redis and tansu on the same machine |"
    )
    md.append(
        f"| load model | {users:,} fans = {math.ceil(users / per_vu):,} k6 VUs × {per_vu} fans; each VU enters "
        f"its fans together and polls the waiting ones every {poll:g} s in one parallel `http.batch` "
        f"(fixed-rate from when the VU's tokens arrived: one poll per fan per {poll:g} s, late rounds not caught up) |"
    )
    md.append("")
    md.append("Server settings (environment):\n")
    md.append("```")
    for k, v in server_env.items():
        if k == "JWT_SECRET":
            v = "(dev secret)" if v == "dev-secret-change-me" else "(set)"
        md.append(f"{k}={v}")
    md.append("```\n")

    md.append("## Thresholds and goal\n")
    md.append("| criterion | measured | result |\n|---|---|---|")
    labels = {
        ("queue_activation_seconds", "p(95)<60"): ("activation time P95 < 60 s", secs(act["p(95)"])),
        ("http_req_duration{op:queueStatus}", "p(99)<200"): ("polling P99 < 200 ms", ms(poll_lat["p(99)"])),
        ("graphql_failed", "rate<0.005"): ("error rate < 0.5 %", f"{fmt((failed_rate or 0) * 100, 3)} %"),
        ("queue_users_not_activated", "count<1"): ("every fan reaches ACTIVE", f"{integrity['not_activated']:,} did not"),
    }
    for name, expr, ok in plan:
        label, measured = labels.get((name, expr), (f"`{name}` {expr}", ""))
        md.append(f"| {label} | {measured} | {pass_fail(ok)} |")
    md.append(
        f"| goal: 10 % → 100 % of fans ACTIVE within 30 s (1,000 → 10,000 for 10,000 fans) | "
        f"{secs(ramp)} | {pass_fail(goal_ok)} |"
    )
    md.append("")

    md.append("## Results\n")
    md.append("| metric | value |\n|---|---|")
    md.append(f"| fans | {users:,} |")
    md.append(
        f"| entered (token received) | {int(entered):,} in {secs(enter_wave)} → **{fmt(entered_per_s, 0)} entries/s** "
        f"(the first 99 % in {secs(enter_wave99)} → {fmt(entered_per_s99, 0)}/s) |"
    )
    md.append(
        f"| enterQueue latency P50 / P95 / P99 / max | {ms(enter_lat['med'])} / {ms(enter_lat['p(95)'])} / "
        f"{ms(enter_lat['p(99)'])} / {ms(enter_lat['max'])} |"
    )
    md.append(f"| reached ACTIVE | {int(active_users):,}, the last {secs(last_active)} after the start |")
    md.append(f"| ACTIVE issuance (ACTIVE fans / time to the last) | **{fmt(admissions_per_s, 0)} /s** |")
    if store.get("admissions_per_s_10_to_100pct"):
        md.append(f"| ACTIVE issuance 10 % → 100 %, from the store | {fmt(store['admissions_per_s_10_to_100pct'], 0)} /s |")
    md.append(
        f"| activation time (enter → first ACTIVE seen) P50 / P95 / P99 / max | {secs(act['med'])} / "
        f"{secs(act['p(95)'])} / {secs(act['p(99)'])} / {secs(act['max'])} |"
    )
    md.append(
        f"| queueStatus latency P50 / P95 / P99 / max | {ms(poll_lat['med'])} / {ms(poll_lat['p(95)'])} / "
        f"{ms(poll_lat['p(99)'])} / {ms(poll_lat['max'])} |"
    )
    md.append(f"| requests | {int(enters):,} enterQueue + {int(polls):,} queueStatus in {secs(duration_s)} |")
    md.append(
        f"| failed requests (HTTP ≠ 200 or `errors`) | {fmt(failed_count, 0) if failed_count is not None else 'n/a'} "
        f"({fmt((failed_rate or 0) * 100, 3)} %) |"
    )
    errs = ", ".join(f"`{c}` {n:,}" for c, n in sorted(errors_by_code.items(), key=lambda x: -x[1])) or "none"
    if unlisted > 0:
        errs += f", other codes {unlisted:,}"
    md.append(f"| errors by code | {errs} |")
    if errors_by_op:
        md.append("| errors by operation | " + ", ".join(f"{o} {n:,}" for o, n in errors_by_op.items()) + " |")
    md.append(
        f"| queue integrity | position went up {integrity['position_regressions']:,} times; "
        f"EXPIRED while waiting {integrity['expired_while_waiting']:,}; malformed answers {integrity['bad_payloads']:,} |"
    )
    eta = {k: s.get("queue_eta_error_seconds", k) for k in ("med", "p(95)")}
    if eta["med"] is not None:
        md.append(f"| ETA error (actual − estimatedWaitSeconds at entry) P50 / P95 | {secs(eta['med'])} / {secs(eta['p(95)'])} |")
    pos50, eta50 = s.get("queue_enter_position", "med"), s.get("queue_enter_eta_seconds", "med")
    if pos50 is not None and eta50:
        md.append(
            f"| place and ETA in the enterQueue answer, P50 | place {fmt(pos50, 0)}, ETA {secs(eta50)} "
            f"(i.e. {fmt(pos50 / eta50, 0)} admissions/s assumed) |"
        )
    md.append("")

    md.append("## Queue store (Redis) and server view\n")
    md.append("| metric | value |\n|---|---|")
    for name, h in redis["latency"].items():
        md.append(
            f"| Redis `{name}` during the run (all clients) | {h['calls']:,} calls, P50 ≤ {h['p50_usec_le']} µs, "
            f"P99 ≤ {h['p99_usec_le']} µs, max ≤ {h['max_usec_le']} µs |"
        )
    top = sorted(redis["commands"].items(), key=lambda x: -x[1]["calls"])[:6]
    if top:
        md.append(
            "| Redis commands (incl. inside scripts) | "
            + ", ".join(f"{n} {c['calls']:,} ({c['usec_per_call']} µs)" for n, c in top)
            + " |"
        )
    if store:
        md.append(
            f"| store timeline (1 s samples) | peak waiting {store['peak_waiting']:,}; 10 % ACTIVE after "
            f"{secs(store['active_10pct_after_s'])}, 100 % after {secs(store['active_100pct_after_s'])} |"
        )
    md.append(
        f"| server: queue wait (enter → admitted) P50 / P95 / P99 (`queue_wait_seconds` bucket bounds; its buckets end at 10 s) | "
        + " / ".join(le_s(server_side[k]) for k in ("queue_wait_p50_s_le", "queue_wait_p95_s_le", "queue_wait_p99_s_le"))
        + " |"
    )
    md.append(
        f"| server: entries / admissions / abandoned / expired / tick failures | "
        f"{fmt(server_side['queue_entries_total'], 0)} / {fmt(server_side['queue_admissions_total'], 0)} / "
        f"{fmt(server_side['queue_abandoned_total'], 0)} / {fmt(server_side['queue_expired_total'], 0)} / "
        f"{fmt(server_side['queue_tick_failures_total'], 0)} |"
    )
    md.append("")

    if windows:
        md.append("Polling over time (10 s windows by when the poll round started):\n")
        md.append("| from (s) | polls | P50 | P99 | failed (all ops) |\n|---|---|---|---|---|")
        for w in windows:
            md.append(
                f"| {w['from_s']}{'+' if w['window'] == max(x['window'] for x in windows) and w['window'] >= 18 else ''} | "
                f"{w['polls']:,} | {ms(w['p50_ms'])} | {ms(w['p99_ms'])} | {fmt((w['failed_rate'] or 0) * 100, 1)} % |"
            )
        md.append("")
    md.append(f"Server log: {serverlog['bytes'] / 1e6:,.1f} MB; WARN/ERROR lines by message:\n")
    if serverlog["top"]:
        md.append("| count | message |\n|---|---|")
        for msg, n in serverlog["top"]:
            md.append(f"| {n:,} | `{msg}` |")
    else:
        md.append("(none)")
    md.append("")

    md.append("## Resources (sampled every second)\n")
    md.append("| process | CPU peak | CPU avg while fans waited | RSS peak |\n|---|---|---|---|")
    md.append(
        f"| server | {fmt(resources['server_cpu_peak_pct'], 0)} % | {fmt(resources['server_cpu_avg_while_waiting_pct'], 0)} % | "
        f"{fmt(resources['server_rss_peak_mb'], 0)} MB |"
    )
    md.append(
        f"| k6 | {fmt(resources['k6_cpu_peak_pct'], 0)} % | {fmt(resources['k6_cpu_avg_while_waiting_pct'], 0)} % | "
        f"{fmt(resources['k6_rss_peak_mb'], 0)} MB |"
    )
    md.append(
        f"| Redis | {fmt(resources['redis_cpu_peak_pct'], 0)} % | {fmt(resources['redis_cpu_avg_while_waiting_pct'], 0)} % | |"
    )
    md.append(
        f"| whole machine (busy, of {m['nproc'] * 100} % on {m['nproc']} cores shown as 0–100 %) | "
        f"{fmt(resources['machine_busy_peak_pct'], 0)} % | {fmt(resources['machine_busy_avg_while_waiting_pct'], 0)} % | |"
    )
    md.append("\nCPU % is of one core (200 % = both cores).\n")

    if rows:
        md.append("Timeline (every 2nd one-second sample):\n")
        md.append("| t (s) | waiting | ACTIVE | observed rate (/s, ETA basis) | server CPU % | k6 CPU % | Redis CPU % | machine busy % |\n|---|---|---|---|---|---|---|---|")
        for r in rows[1::2]:
            md.append(
                f"| {r['t']:.0f} | {fmt(r.get('waiting'), 0)} | {fmt(r.get('active'), 0)} | {fmt(r.get('observed_rate'), 0)} | "
                f"{fmt(r.get('server_cpu'), 0)} | {fmt(r.get('k6_cpu'), 0)} | {fmt(r.get('redis_cpu'), 0)} | {fmt(r.get('machine_busy'), 0)} |"
            )
        md.append("")

    md.append("## What limited it\n")
    for n in notes:
        md.append(f"- {n}")
    md.append("")
    md.append("## Reproduce\n")
    md.append(
        f"```sh\n{ctx['command']}\n```\n\nRaw artefacts of this run (not committed): `{ctx['run_dir_rel']}/` "
        "(k6 summary and log, samples.tsv, server log, /metrics, Redis stats). Numbers in "
        f"`{os.path.basename(ctx['out'])}.json`."
    )

    data = {
        "scenario": "queue-wave",
        "passed": passed,
        "command": ctx["command"],
        "k6_command": ctx["k6_cmd"],
        "k6_version": ctx["k6_version"],
        "k6_exit": ctx["k6_exit"],
        "started": ctx["started"],
        "finished": ctx["finished"],
        "machine": m,
        "source": src,
        "server_settings": {k: ("(redacted)" if k == "JWT_SECRET" else v) for k, v in server_env.items()},
        "load_model": {"users": users, "users_per_vu": per_vu, "vus": math.ceil(users / per_vu) if users else None, "poll_seconds": poll},
        "thresholds": [{"metric": n, "threshold": e, "passed": ok} for n, e, ok in plan],
        "goal_ramp_10_to_100pct_within_30s": {"measured_s": ramp, "passed": goal_ok},
        "results": {
            "entered": entered,
            "enter_wave_seconds": enter_wave,
            "entered_per_second": entered_per_s,
            "enter_wave_p99_seconds": enter_wave99,
            "entered_per_second_first_99pct": entered_per_s99,
            "enter_latency_ms": enter_lat,
            "users_active": active_users,
            "last_active_at_seconds": last_active,
            "active_10pct_at_seconds": first10,
            "admissions_per_second": admissions_per_s,
            "activation_seconds": act,
            "poll_latency_ms": poll_lat,
            "requests": {"enterQueue": enters, "queueStatus": polls},
            "test_duration_seconds": duration_s,
            "graphql_failed_rate": failed_rate,
            "graphql_failed_count": failed_count,
            "graphql_errors_total": total_errors,
            "errors_by_code": errors_by_code,
            "errors_by_op": errors_by_op,
            "integrity": integrity,
            "eta_error_seconds": eta,
        },
        "store": store,
        "redis": redis,
        "server_metrics": server_side,
        "resources": resources,
        "cost_and_capacity": capacity,
        "poll_windows": windows,
        "server_log": serverlog,
        "notes": notes,
        "samples": rows,
    }
    return "\n".join(md) + "\n", data, passed


# ------------------------------------------------------------------------------------------------
# shared by seat-stampede and payments


def hist_buckets(prom, name, match=None):
    """Cumulative bucket counts {le: count} of a Prometheus histogram, summed over label sets."""
    out = {}
    for labels, value in prom.get(name + "_bucket", []):
        if match and any(labels.get(k) != v for k, v in match.items()):
            continue
        le = labels.get("le")
        le = math.inf if le == "+Inf" else float(le)
        out[le] = out.get(le, 0) + value
    return out


def hist_quantile(buckets, q):
    """Upper bound of the bucket holding quantile q (a number, or "> last bound")."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    finite = [le for le, _ in ordered if le != math.inf]
    for le, c in ordered:
        if c >= q * total:
            return le if le != math.inf else (f"> {finite[-1]:g}" if finite else None)
    return None


def hist_diff(after, before):
    return {le: c - before.get(le, 0) for le, c in after.items()}


def counter_sum(prom, name, match=None):
    vals = [v for labels, v in prom.get(name, []) if not match or all(labels.get(k) == x for k, x in match.items())]
    return sum(vals) if vals else None


def counter_by(prom, name, label):
    out = {}
    for labels, v in prom.get(name, []):
        out[labels.get(label, "")] = out.get(labels.get(label, ""), 0) + v
    return out


def le_ms(v):
    if v is None:
        return "n/a"
    return f"{v} s" if isinstance(v, str) else f"≤ {v * 1000:g} ms"


def sql_checks(run_dir):
    rows = []
    for line in (read(os.path.join(run_dir, "sql-checks.tsv"), "") or "").splitlines():
        cells = line.split("\t")
        if len(cells) < 4:
            continue
        name, expected, actual, sql = cells[:4]
        rows.append({
            "check": name,
            "expected": None if expected == "-" else expected,
            "actual": actual,
            "passed": None if expected == "-" else actual == expected,
            "sql": sql,
        })
    return rows


def pg_stats(run_dir):
    def parse(text):
        return {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", text or "")}
    before = parse(read(os.path.join(run_dir, "pgstat.before")))
    after = parse(read(os.path.join(run_dir, "pgstat.after")))
    return {k: after[k] - before.get(k, 0) for k in after} if after else {}


def errors_by(s, label):
    out = {}
    for name in s.metrics:
        m = re.match(r"^graphql_errors\{" + label + r":([^}]+)\}$", name)
        if m and (s.get(name, "count", 0) or 0) > 0:
            out[m.group(1)] = int(s.get(name, "count"))
    return dict(sorted(out.items(), key=lambda x: -x[1]))


def lat(s, metric, stats=("med", "p(90)", "p(95)", "p(99)", "max")):
    return {k: s.get(metric, k) for k in stats}


def lat_row(d):
    return " / ".join(ms(d.get(k)) for k in ("med", "p(95)", "p(99)", "max"))


def resources_of(rows, window=None):
    sel = [r for r in rows if window is None or window(r)] or rows

    def peak(key):
        vals = [r[key] for r in rows if r.get(key) is not None]
        return max(vals) if vals else None

    def avg(key):
        vals = [r[key] for r in sel if r.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    out = {}
    for key in ("server_cpu", "k6_cpu", "redis_cpu", "pg_cpu", "machine_busy", "pool_in_use"):
        out[f"{key}_peak"] = peak(key)
        out[f"{key}_avg"] = avg(key)
    out["server_rss_peak_mb"] = (peak("server_rss_kb") or 0) / 1024
    out["k6_rss_peak_mb"] = (peak("k6_rss_kb") or 0) / 1024
    out["pool_open_peak"] = peak("pool_open")
    out["build_processes_peak"] = peak("build_procs")
    out["samples"] = len(rows)
    out["samples_averaged"] = len(sel)
    return out


def resources_md(res, what):
    md = ["| process | CPU peak | CPU avg " + what + " | RSS peak |", "|---|---|---|---|"]
    md.append(f"| server | {fmt(res['server_cpu_peak'], 0)} % | {fmt(res['server_cpu_avg'], 0)} % | {fmt(res['server_rss_peak_mb'], 0)} MB |")
    if res.get("pg_cpu_peak") is not None:
        md.append(f"| PostgreSQL (all backends) | {fmt(res['pg_cpu_peak'], 0)} % | {fmt(res['pg_cpu_avg'], 0)} % | |")
    md.append(f"| k6 | {fmt(res['k6_cpu_peak'], 0)} % | {fmt(res['k6_cpu_avg'], 0)} % | {fmt(res['k6_rss_peak_mb'], 0)} MB |")
    md.append(f"| Redis | {fmt(res['redis_cpu_peak'], 0)} % | {fmt(res['redis_cpu_avg'], 0)} % | |")
    md.append(f"| whole machine (busy, 0–100 % of all cores) | {fmt(res['machine_busy_peak'], 0)} % | {fmt(res['machine_busy_avg'], 0)} % | |")
    if res.get("pool_in_use_peak") is not None:
        md.append(
            f"| database pool: connections in use (of {fmt(res.get('pool_open_peak'), 0)} open) | "
            f"{fmt(res['pool_in_use_peak'], 0)} | {fmt(res['pool_in_use_avg'], 0)} | |"
        )
    md.append("\nCPU % is of one core (200 % = both cores).\n")
    return md


def timeline_md(rows, every=1, limit=60):
    if not rows:
        return []
    step = max(every, math.ceil(len(rows) / limit))
    md = ["| t (s) | server CPU % | PostgreSQL CPU % | k6 CPU % | Redis CPU % | machine busy % | pool in use |",
          "|---|---|---|---|---|---|---|"]
    for r in rows[step - 1::step]:
        md.append(
            f"| {r['t']:.0f} | {fmt(r.get('server_cpu'), 0)} | {fmt(r.get('pg_cpu'), 0)} | {fmt(r.get('k6_cpu'), 0)} | "
            f"{fmt(r.get('redis_cpu'), 0)} | {fmt(r.get('machine_busy'), 0)} | {fmt(r.get('pool_in_use'), 0)} |"
        )
    md.append("")
    return md


def sql_md(checks):
    md = ["| check | expected | actual | result |", "|---|---|---|---|"]
    for c in checks:
        res = "info" if c["passed"] is None else pass_fail(c["passed"])
        md.append(f"| {c['check']} | {c['expected'] if c['expected'] is not None else '—'} | {c['actual']} | {res} |")
    md.append("\nThe queries, as run on the load database after the server stopped:\n")
    md.append("```sql")
    for c in checks:
        md.append(f"-- {c['check']}" + (f" (expected {c['expected']})" if c["expected"] is not None else ""))
        md.append(c["sql"] + ";")
    md.append("```\n")
    return md


def run_md(ctx, load_model, extra_rows=()):
    m = ctx["machine"]
    src = ctx["source"]
    md = ["## Run\n", "| | |", "|---|---|"]
    md.append(f"| date (UTC) | {ctx['started']} → {ctx['finished']} |")
    md.append(f"| command | `{ctx['command']}` |")
    md.append(f"| k6 | `{ctx['k6_cmd']}` ({ctx['k6_version']}) |")
    md.append(f"| machine | {m['nproc']} vCPU ({m['cpu_model']}), {m['memory_gib']} GiB RAM, Linux {m['kernel']} |")
    md.append(
        f"| server | release build of `{src['commit']}`"
        + (" plus uncommitted changes in the working tree (another engineer's work in progress)" if src["uncommitted_server_changes"] else "")
        + "; PostgreSQL, Redis and tansu on the same machine |"
    )
    seed = (read(os.path.join(ctx["run_dir"], "seed.args"), "") or "").strip()
    if seed:
        md.append(f"| data | `concert-reservation {seed}` |")
    md.append(f"| load model | {load_model} |")
    for k, v in extra_rows:
        md.append(f"| {k} | {v} |")
    md.append("")
    md.append("Server settings (environment):\n")
    md.append("```")
    for k, v in ctx["server_env"].items():
        if k == "JWT_SECRET":
            v = "(dev secret)" if v == "dev-secret-change-me" else "(set)"
        md.append(f"{k}={v}")
    md.append("```\n")
    return md


def thresholds_md(plan, labels, goals):
    md = ["## Thresholds and goals\n", "| criterion | measured | result |", "|---|---|---|"]
    for name, expr, ok in plan:
        label, measured = labels.get((name, expr), (f"`{name}` {expr}", ""))
        md.append(f"| {label} | {measured} | {pass_fail(ok)} |")
    for label, measured, ok in goals:
        md.append(f"| {label} | {measured} | {'info' if ok is None else pass_fail(ok)} |")
    md.append("")
    return md


def judged(s):
    return [t for t in s.thresholds() if not re.search(r">=0$", t[1])]


def log_md(serverlog):
    md = [f"Server log: {serverlog['bytes'] / 1e6:.1f} MB; WARN/ERROR lines by message:\n"]
    if serverlog["top"]:
        md.append("| count | message |\n|---|---|")
        for msg, n in serverlog["top"]:
            md.append(f"| {n:,} | `{msg}` |")
    else:
        md.append("(none)")
    md.append("")
    return md


def interference_note(res):
    if res.get("build_processes_peak"):
        return (
            f"Other work compiled on this machine during the run (up to {res['build_processes_peak']:.0f} "
            "rustc/cargo/nextest/cc/ld processes seen in the 1 s samples): they took CPU from the "
            "server, PostgreSQL and k6, so the numbers are pessimistic."
        )
    return None


def common_json(ctx, scenario, passed, plan):
    return {
        "scenario": scenario,
        "passed": passed,
        "command": ctx["command"],
        "k6_command": ctx["k6_cmd"],
        "k6_version": ctx["k6_version"],
        "k6_exit": ctx["k6_exit"],
        "started": ctx["started"],
        "finished": ctx["finished"],
        "machine": ctx["machine"],
        "source": ctx["source"],
        "seed": (read(os.path.join(ctx["run_dir"], "seed.args"), "") or "").strip(),
        "server_settings": {k: ("(redacted)" if k == "JWT_SECRET" else v) for k, v in ctx["server_env"].items()},
        "thresholds": [{"metric": n, "threshold": e, "passed": ok} for n, e, ok in plan],
    }


# ------------------------------------------------------------------------------------------------
# seat-stampede


def report_seat_stampede(ctx):
    s = ctx["summary"]
    env = ctx["k6_env"]
    server_env = ctx["server_env"]
    users = int(env.get("USERS", 0))
    seats = int(env.get("SEATS", 50))
    expected = int(env.get("EXPECTED_HOLDS", min(seats, users)))
    per_vu = int(env.get("USERS_PER_VU", 10))
    mode = env.get("MODE", "seat")
    attempts_max = int(env.get("MAX_ATTEMPTS", 3))
    poll = float(env.get("POLL_SECONDS", 2))
    rows = ctx["samples"]
    prom = ctx["prometheus"]
    c = lambda name: int(s.get(name, "count", 0) or 0)  # noqa: E731

    fans = {k: c(f"stampede_fans_{k}") for k in ("held", "lost", "sold_out", "failed", "not_active")}
    holds_ok = c("stampede_holds_ok")
    attempts = c("stampede_hold_attempts")
    unavailable = c("stampede_hold_seat_unavailable")
    other = c("stampede_hold_other_errors")
    hold_all = lat(s, "stampede_hold_ms")
    hold_ok = lat(s, "stampede_hold_ok_ms")
    hold_unav = lat(s, "stampede_hold_unavailable_ms")
    real_rate = s.get("stampede_real_failed", "value")
    real_count = s.get("stampede_real_failed", "passes")
    all_count = (s.get("stampede_real_failed", "passes") or 0) + (s.get("stampede_real_failed", "fails") or 0)
    gfailed_rate = s.get("graphql_failed", "value")
    answered = s.get("stampede_hold_answered", "value")
    ops = ["enterQueue", "queueStatus", "concert", "schedule", "holdSeats", "holdBestAvailable"]
    per_op = {}
    for op in ops:
        n = s.get(f"http_reqs{{op:{op}}}", "count", 0) or 0
        if n:
            per_op[op] = {"requests": int(n), "latency_ms": lat(s, f"http_req_duration{{op:{op}}}"),
                          "real_failed_rate": s.get(f"stampede_real_failed{{op:{op}}}", "value")}
    codes = errors_by(s, "code")
    by_op = errors_by(s, "op")
    first_hold = s.get("stampede_hold_ok_at_seconds", "min")
    last_hold = s.get("stampede_hold_ok_at_seconds", "max")
    activation = lat(s, "stampede_activation_seconds", ("med", "p(95)", "max"))
    active_at = lat(s, "stampede_active_at_seconds", ("min", "med", "max"))
    booking = lat(s, "stampede_booking_seconds", ("med", "p(95)", "p(99)", "max"))
    hold_codes = {}
    for name in s.metrics:
        m = re.match(r"^stampede_hold_other_errors\{code:([^}]+)\}$", name)
        if m and (s.get(name, "count", 0) or 0) > 0:
            hold_codes[m.group(1)] = int(s.get(name, "count"))
    lock_timeouts = sum(hold_codes.get(k, 0) for k in ("BUSY", "TIMEOUT"))

    checks = sql_checks(ctx["run_dir"])
    sql_ok = bool(checks) and all(ch["passed"] is not False for ch in checks)
    pg = pg_stats(ctx["run_dir"])
    res = resources_of(rows, lambda r: (r.get("k6_cpu") or 0) > 5)
    serverlog = server_log_summary(os.path.join(ctx["run_dir"], "server.log"))

    hold_hist = hist_buckets(prom, "hold_duration_seconds")
    server_side = {
        "hold_transaction_p50_s_le": hist_quantile(hold_hist, 0.5),
        "hold_transaction_p95_s_le": hist_quantile(hold_hist, 0.95),
        "hold_transaction_p99_s_le": hist_quantile(hold_hist, 0.99),
        "hold_transaction_mean_ms": (
            1000 * counter_sum(prom, "hold_duration_seconds_sum") / counter_sum(prom, "hold_duration_seconds_count")
            if counter_sum(prom, "hold_duration_seconds_count") else None),
        "holds_by_outcome": counter_by(prom, "holds_total", "outcome"),
        "skip_locked_misses": counter_sum(prom, "skip_locked_misses_total"),
        "db_retries": counter_by(prom, "db_retries_total", "reason"),
        "db_pool_wait_p99_s_le": hist_quantile(hist_buckets(prom, "db_pool_wait_seconds"), 0.99),
        "graphql_errors_total": counter_sum(prom, "graphql_errors_total"),
        "deadlocks": pg.get("deadlocks"),
        "xact_commit": pg.get("xact_commit"),
        "xact_rollback": pg.get("xact_rollback"),
    }

    plan = judged(s)
    order = ["stampede_hold_ms", "stampede_holds_ok", "stampede_real_failed", "stampede_hold_answered", "stampede_fans_not_active"]
    plan.sort(key=lambda t: (order.index(t[0]) if t[0] in order else len(order), t[1]))
    fans_total = sum(fans.values())
    goals = [
        ("data consistency: every SQL check as expected (nothing oversold, exactly the held seats HELD)",
         f"{sum(1 for ch in checks if ch['passed'])} of {sum(1 for ch in checks if ch['passed'] is not None)} checks" if checks else "not run",
         sql_ok),
        ("every fan has one final outcome", f"{fans_total:,} of {users:,}", fans_total == users),
        ("deadlocks (pg_stat_database, load database)", fmt(pg.get("deadlocks"), 0), None if pg.get("deadlocks") is None else pg.get("deadlocks") < 10),
    ]
    passed = all(ok for _, _, ok in plan) and all(ok is not False for _, _, ok in goals) and ctx["k6_exit"] in (0, 99)
    k6_broke = ctx["k6_exit"] not in (0, 99)

    # ---- what limited it
    notes = []
    if last_hold is not None and active_at.get("min") is not None:
        notes.append(
            f"The seats went in {fmt(last_hold - first_hold, 2)} s: the first hold succeeded {secs(first_hold)} after the "
            f"start, the {holds_ok}th {secs(last_hold)} after it; the first fans were ACTIVE at {secs(active_at['min'])}, "
            f"the last at {secs(active_at['max'])}. Everything after that was fans being told, correctly, that the seats were gone."
        )
    notes.append(
        f"Locks: {holds_ok} holds succeeded out of {attempts:,} attempts; {unavailable:,} were answered SEAT_UNAVAILABLE "
        f"(the seat was taken, or its row was locked by another fan's hold at that instant: FOR UPDATE SKIP LOCKED skips it "
        f"instead of waiting). Lock timeouts / BUSY: {lock_timeouts}. The server counted {fmt(server_side['skip_locked_misses'], 0)} "
        f"holds that could not lock every seat they wanted. Nobody waits for a row lock here, so lock acquisition time is simply "
        f"the hold request's latency (P99 {ms(hold_all.get('p(99)'))})."
    )
    if server_side["hold_transaction_mean_ms"] is not None:
        notes.append(
            f"Inside the server the hold transaction itself (`hold_duration_seconds`, timed once a database connection is "
            f"in hand) took {fmt(server_side['hold_transaction_mean_ms'], 1)} ms on average (P99 "
            f"{le_ms(server_side['hold_transaction_p99_s_le'])}). The rest of the {ms(hold_all.get('med'))} median seen by k6 "
            f"is waiting before it: a database pool checkout for the schedule lookup, a Redis pool checkout for the queue "
            f"check, a second database checkout for the transaction (the pools are shared with the crowd's polls and "
            f"catalogue reads: wait P99 {le_ms(server_side['db_pool_wait_p99_s_le'])}), and CPU."
        )
    if res.get("machine_busy_avg") is not None:
        notes.append(
            f"CPU: k6, the server, PostgreSQL and Redis share {ctx['machine']['nproc']} cores. While k6 was busy the machine was "
            f"{fmt(res['machine_busy_avg'], 0)} % busy on average (peak {fmt(res['machine_busy_peak'], 0)} %): server "
            f"{fmt(res['server_cpu_avg'], 0)} %, PostgreSQL {fmt(res['pg_cpu_avg'], 0)} %, k6 {fmt(res['k6_cpu_avg'], 0)} %, "
            f"Redis {fmt(res['redis_cpu_avg'], 0)} % of one core"
            + (f" — {fmt(res['machine_busy_avg'] * 2 - sum((res.get(k) or 0) for k in ('server_cpu_avg', 'pg_cpu_avg', 'k6_cpu_avg', 'redis_cpu_avg')), 0)} % "
               "of one core went to other processes" if res['machine_busy_avg'] * 2 - sum((res.get(k) or 0) for k in ('server_cpu_avg', 'pg_cpu_avg', 'k6_cpu_avg', 'redis_cpu_avg')) > 25 else "")
            + f". The hard part for the machine is not the holds ({attempts:,} for {users:,} fans) but the crowd around them: "
            f"{users:,} enterQueue at once, then their polls, schedule lists and seat maps, all within seconds."
        )
    if fans["sold_out"]:
        notes.append(
            f"{fans['sold_out']:,} fans saw no free seat on their seat map and never sent a hold; {fans['lost']:,} tried and "
            f"lost every attempt (up to {attempts_max}): they lost the race for a seat that was free when they looked, or "
            f"looked at a map up to {server_env.get('SEAT_MAP_CACHE_TTL_SECONDS', '2')} s old (the cache's TTL; every hold "
            f"drops it, so the next reader rebuilds it from PostgreSQL), and were told SEAT_UNAVAILABLE at once."
        )
    other_codes = {k: v for k, v in codes.items() if k != "SEAT_UNAVAILABLE"}
    if other_codes:
        fails_by_op = {op: round((d["real_failed_rate"] or 0) * d["requests"]) for op, d in per_op.items() if d["real_failed_rate"]}
        causes = []
        log = dict(serverlog["top"])
        n_redis = sum(v for k, v in log.items() if "redis: Timed out in bb8" in k)
        n_db = sum(v for k, v in log.items() if "database pool timed out" in k)
        n_cache = sum(v for k, v in log.items() if "seat map cache unreadable" in k)
        if n_redis:
            causes.append(f"{n_redis:,}× the Redis pool's 2 s checkout timeout (“redis: Timed out in bb8”, answered QUEUE_UNAVAILABLE "
                          f"to queue operations)")
        if n_db:
            causes.append(f"{n_db:,}× the database pool's checkout timeout (DATABASE_POOL_TIMEOUT_MS, answered UNAVAILABLE)")
        if n_cache:
            causes.append(f"{n_cache:,}× the seat-map cache read could not get a Redis connection in time (logged as "
                          f"“no connection - Io”) and read PostgreSQL instead")
        notes.append(
            "Real failures: " + ", ".join(f"{k} {v:,}" for k, v in other_codes.items())
            + (" — by operation " + ", ".join(f"{op} {n:,}" for op, n in fails_by_op.items()) if fails_by_op else "")
            + (". The server log says why: " + "; ".join(causes) if causes else "")
            + ". None of them is a hold: the seats' locks were never the problem; the queue's polls and the catalogue reads "
              "around them were, with the CPU saturated and " + server_env.get("REDIS_POOL_SIZE", "32") + " Redis / "
            + server_env.get("DATABASE_POOL_SIZE", "32") + " database connections for the whole crowd. Fans retry these "
              "(a failed poll at the next poll, a failed read after 250 ms), so they cost time, not seats."
            if not hold_codes else ""
        )
        if hold_codes:
            notes[-1] = ("Real failures: " + ", ".join(f"{k} {v:,}" for k, v in other_codes.items())
                         + "; of the holds: " + ", ".join(f"{k} {v:,}" for k, v in hold_codes.items())
                         + (". The server log says why: " + "; ".join(causes) if causes else "") + ".")
    n = interference_note(res)
    if n:
        notes.append(n)
    if k6_broke:
        notes.append(f"k6 exited with status {ctx['k6_exit']} (not a threshold failure): see k6.log.")

    # ---- markdown
    md = ["# Load test: seat reservation stampede (scenario 1)\n"]
    md.append(
        f"**Result: {'PASS' if passed else 'FAIL'}** — {users:,} fans went through the queue and raced for {seats} seats "
        f"({users / max(1, seats):,.0f} : 1); {holds_ok} holds succeeded (expected {expected}), hold P95 {ms(hold_all.get('p(95)'))}, "
        f"P99 {ms(hold_all.get('p(99)'))}, real failures {fmt((real_rate or 0) * 100, 3)} %, "
        f"SQL consistency {'all as expected' if sql_ok else 'FAILED'}.\n"
    )
    kind = {"seat": "`holdSeats` of one seat chosen at random among those its seat map shows AVAILABLE",
            "best": "`holdBestAvailable(count: 1)`",
            "mix": "odd user ids `holdSeats` of a random free-looking seat, even ones `holdBestAvailable(count: 1)`"}[mode]
    md += run_md(ctx,
        f"{users:,} fans = {math.ceil(users / per_vu):,} k6 VUs × {per_vu} fans, all starting together. Each fan: "
        f"`enterQueue` → `queueStatus` every {poll:g} s until ACTIVE → `concert {{ schedules }}` → `schedule {{ seats }}` → "
        f"{kind}; on SEAT_UNAVAILABLE it reloads the seat map and tries again (at most {attempts_max} holds); a fan whose "
        f"map shows no free seat stops. A VU sends the due requests of its fans together in one parallel `http.batch`.",
        [("error accounting", "SEAT_UNAVAILABLE is the expected answer for all but the winners, so it is a business outcome, not "
          "an error: the error rate is over **real failures** (HTTP ≠ 200, no response, bad JSON, or any code other than "
          "SEAT_UNAVAILABLE) across every request. `graphql_failed`, which counts every error answer, is shown for reference.")])
    labels = {
        ("stampede_hold_ms", "p(95)<500"): ("reservation (hold request) latency P95 < 500 ms", ms(hold_all.get("p(95)"))),
        ("stampede_hold_ms", "p(99)<5000"): ("lock acquisition P99 < 5 s (hold latency: the locks are taken in it)", ms(hold_all.get("p(99)"))),
        ("stampede_holds_ok", f"count=={expected}"): (f"exactly {expected} successful holds", f"{holds_ok}"),
        ("stampede_real_failed", "rate<0.005"): ("error rate (real failures) < 0.5 %", f"{fmt((real_rate or 0) * 100, 3)} % ({fmt(real_count, 0)} of {all_count:,})"),
        ("stampede_hold_answered", "rate>0.999"): ("lock success > 99.9 % (hold answered held or SEAT_UNAVAILABLE)", f"{fmt((answered or 0) * 100, 3)} %"),
        ("stampede_fans_not_active", "count<1"): ("every fan got through the queue", f"{fans['not_active']:,} did not"),
    }
    md += thresholds_md(plan, labels, goals)

    md.append("## Results\n")
    md.append("| metric | value |\n|---|---|")
    md.append(f"| fans | {users:,}: **{fans['held']:,} got a seat**, {fans['lost']:,} tried and lost, {fans['sold_out']:,} saw it sold out, "
              f"{fans['failed']:,} stopped on a failure, {fans['not_active']:,} never ACTIVE |")
    md.append(f"| reservation success | {holds_ok} of {users:,} fans = {fmt(100 * holds_ok / max(1, users), 2)} % (plan: 50 of 10,000 = 0.5 %) |")
    md.append(f"| hold attempts | {attempts:,}: held {holds_ok}, SEAT_UNAVAILABLE {unavailable:,}, other errors {other:,} |")
    md.append(f"| failure breakdown of the holds (plan: lock timeout vs already reserved) | already reserved (SEAT_UNAVAILABLE) {unavailable:,}; "
              f"lock timeout (BUSY / TIMEOUT) {lock_timeouts}; other {other - lock_timeouts:,}"
              + (" (" + ", ".join(f"{k} {v:,}" for k, v in hold_codes.items() if k not in ("BUSY", "TIMEOUT")) + ")"
                 if any(k not in ("BUSY", "TIMEOUT") for k in hold_codes) else "") + " |")
    md.append(f"| hold latency, every attempt, P50 / P95 / P99 / max | {lat_row(hold_all)} |")
    md.append(f"| hold latency, successful, P50 / P95 / P99 / max | {lat_row(hold_ok)} |")
    md.append(f"| hold latency, SEAT_UNAVAILABLE, P50 / P95 / P99 / max | {lat_row(hold_unav)} |")
    if first_hold is not None:
        md.append(f"| when the seats went (since the start) | first {secs(first_hold)}, last {secs(last_hold)} |")
    md.append(f"| queue: enter → ACTIVE seen, P50 / P95 / max | {secs(activation.get('med'))} / {secs(activation.get('p(95)'))} / {secs(activation.get('max'))} |")
    md.append(f"| booking: ACTIVE → final answer, P50 / P95 / P99 / max | {secs(booking.get('med'))} / {secs(booking.get('p(95)'))} / {secs(booking.get('p(99)'))} / {secs(booking.get('max'))} |")
    md.append(f"| real failures (judged) | {fmt(real_count, 0)} of {all_count:,} requests ({fmt((real_rate or 0) * 100, 3)} %) |")
    md.append(f"| every error answer incl. SEAT_UNAVAILABLE (`graphql_failed`, not judged) | {fmt((gfailed_rate or 0) * 100, 2)} % |")
    md.append("| errors by code | " + (", ".join(f"`{k}` {v:,}" for k, v in codes.items()) or "none") + " |")
    if by_op:
        md.append("| errors by operation | " + ", ".join(f"{k} {v:,}" for k, v in by_op.items()) + " |")
    bad = c("stampede_bad_payload")
    dup = c("stampede_hold_already_exists")
    md.append(f"| malformed answers / HOLD_ALREADY_EXISTS | {bad} / {dup} |")
    md.append("")
    md.append("Requests by operation:\n")
    md.append("| operation | requests | P50 | P95 | P99 | max | real failures |\n|---|---|---|---|---|---|---|")
    for op, d in per_op.items():
        l = d["latency_ms"]
        md.append(f"| {op} | {d['requests']:,} | {ms(l.get('med'))} | {ms(l.get('p(95)'))} | {ms(l.get('p(99)'))} | {ms(l.get('max'))} | "
                  f"{fmt((d['real_failed_rate'] or 0) * 100, 3)} % |")
    md.append("")

    md.append("## Data consistency (SQL)\n")
    md += sql_md(checks) if checks else ["(not run)\n"]

    md.append("## Server view\n")
    md.append("| metric | value |\n|---|---|")
    md.append(f"| hold transaction time in the server (`hold_duration_seconds`, after the pool checkout) mean / P50 / P95 / P99 | "
              f"{fmt(server_side['hold_transaction_mean_ms'], 1, ' ms')} / {le_ms(server_side['hold_transaction_p50_s_le'])} / "
              f"{le_ms(server_side['hold_transaction_p95_s_le'])} / {le_ms(server_side['hold_transaction_p99_s_le'])} |")
    md.append("| holds by outcome (`holds_total`) | " + (", ".join(f"{k} {v:,.0f}" for k, v in server_side["holds_by_outcome"].items()) or "n/a") + " |")
    md.append(f"| lock contention: holds that could not lock every seat (`skip_locked_misses_total`) | {fmt(server_side['skip_locked_misses'], 0)} |")
    retries = server_side["db_retries"]
    md.append("| transactions retried (deadlock / serialization / lock timeout; `db_retries_total`) | "
              + (", ".join(f"{k or 'all'} {v:,.0f}" for k, v in retries.items()) if retries else "0") + " |")
    md.append(f"| database pool wait P99 (`db_pool_wait_seconds`) | {le_ms(server_side['db_pool_wait_p99_s_le'])} |")
    md.append(f"| PostgreSQL deadlocks during the run (`pg_stat_database.deadlocks` delta) | {fmt(pg.get('deadlocks'), 0)} |")
    md.append(f"| PostgreSQL transactions committed / rolled back during the run | {fmt(pg.get('xact_commit'), 0)} / {fmt(pg.get('xact_rollback'), 0)} |")
    md.append("")
    md += log_md(serverlog)

    md.append("## Resources (sampled every second)\n")
    md += resources_md(res, "while k6 was busy")
    if rows:
        md.append("Timeline:\n")
        md += timeline_md([r for r in rows], 1, 40)

    md.append("## What limited it\n")
    for n_ in notes:
        md.append(f"- {n_}")
    md.append("")
    md.append("## Reproduce\n")
    md.append(
        f"```sh\n{ctx['command']}\n```\n\nRaw artefacts of this run (not committed): `{ctx['run_dir_rel']}/` "
        "(k6 summary and log, samples.tsv, server log, /metrics, sql-checks.tsv, pg_stat_database). Numbers in "
        f"`{os.path.basename(ctx['out'])}.json`."
    )

    data = common_json(ctx, "seat-stampede", passed, plan)
    data.update({
        "goals": [{"goal": g, "measured": m_, "passed": ok} for g, m_, ok in goals],
        "load_model": {"users": users, "seats": seats, "expected_holds": expected, "users_per_vu": per_vu,
                       "vus": math.ceil(users / per_vu) if users else None, "mode": mode, "max_attempts": attempts_max,
                       "poll_seconds": poll},
        "error_accounting": "real failures = every request whose answer is not data or SEAT_UNAVAILABLE",
        "results": {
            "fans": fans, "holds_ok": holds_ok, "hold_attempts": attempts, "seat_unavailable": unavailable,
            "hold_other_errors": other, "hold_errors_by_code": hold_codes, "lock_timeouts": lock_timeouts,
            "hold_latency_ms": hold_all, "hold_ok_latency_ms": hold_ok, "hold_unavailable_latency_ms": hold_unav,
            "first_hold_at_s": first_hold, "last_hold_at_s": last_hold,
            "activation_seconds": activation, "booking_seconds": booking,
            "real_failed_rate": real_rate, "real_failed_count": real_count, "requests": all_count,
            "graphql_failed_rate": gfailed_rate, "errors_by_code": codes, "errors_by_op": by_op, "per_op": per_op,
        },
        "sql_checks": checks,
        "pg_stat_database_delta": pg,
        "server_metrics": server_side,
        "resources": res,
        "server_log": serverlog,
        "notes": notes,
        "samples": rows,
    })
    return "\n".join(md) + "\n", data, passed


# ------------------------------------------------------------------------------------------------
# payments


def report_payments(ctx):
    s = ctx["summary"]
    env = ctx["k6_env"]
    server_env = ctx["server_env"]
    run_dir = ctx["run_dir"]
    users = int(env.get("USERS", 0))
    rate = int(env.get("RATE", 0))
    duration = int(env.get("DURATION", 0))
    payments_target = int(env.get("PAYMENTS", rate * duration))
    prep_wanted = int(env.get("PREPARE_HOLDS", payments_target))
    concerts = int(env.get("CONCERTS", 0))
    pre_vus = int(env.get("PRE_VUS", 500))
    max_vus = int(env.get("MAX_VUS", 1000))
    rows = ctx["samples"]
    prom = ctx["prometheus"]
    prom_prep = prometheus(read(os.path.join(run_dir, "metrics.prepare.txt"), ""))
    prep = json.loads(read(os.path.join(run_dir, "prepare.json"), "{}") or "{}")
    prep_s = None
    if os.path.exists(os.path.join(run_dir, "prepare-summary.json")):
        with open(os.path.join(run_dir, "prepare-summary.json"), encoding="utf-8") as f:
            prep_s = Summary(json.load(f))
    prep_rows = samples(os.path.join(run_dir, "prepare-samples.tsv"))
    c = lambda name: int(s.get(name, "count", 0) or 0)  # noqa: E731

    ok = c("payments_ok")
    started = c("iterations")
    dropped = c("dropped_iterations")
    no_hold = c("payments_no_hold_left")
    pay_reqs = int(s.get("http_reqs{op:pay}", "count", 0) or 0)
    succ_rate = s.get("payment_succeeded", "value")
    failed_rate = s.get("graphql_failed", "value")
    failed_count = int(s.get("graphql_failed", "passes", 0) or 0)
    lat_all = lat(s, "http_req_duration{op:pay}")
    lat_ok = lat(s, "payment_ms")
    lat_fail = lat(s, "payment_failed_ms", ("med", "p(95)", "max"))
    codes = errors_by(s, "code")
    vus_max = s.get("vus_max", "max") or s.get("vus_max", "value")
    vus_peak = s.get("vus", "max")
    windows = []
    for name in sorted(s.metrics):
        m = re.match(r"^http_req_duration\{op:pay,window:w(\d+)\}$", name)
        if not m or not s.get(name, "count"):
            continue
        w = int(m.group(1))
        n = int(s.get(name, "count"))
        windows.append({
            "from_s": w * 10, "payments_sent": n, "per_s": n / 10, "p50_ms": s.get(name, "med"), "p95_ms": s.get(name, "p(95)"),
            "p99_ms": s.get(name, "p(99)"),
            "succeeded": s.get(f"payment_succeeded{{window:w{m.group(1)}}}", "value"),
        })
    # Throughput: completed payments over the measured phase (the scenario's duration, plus the
    # drain of those still in flight when it ended).
    tps = ok / duration if duration else None
    # The steady part: windows after the first 10 s and before the last one.
    steady = windows[1:-1] if len(windows) > 3 else windows
    steady_tps = sum(w["per_s"] * (w["succeeded"] or 0) for w in steady) / len(steady) if steady else None

    checks = sql_checks(run_dir)
    sql_ok = bool(checks) and all(ch["passed"] is not False for ch in checks)
    db_payments = next((int(ch["actual"]) for ch in checks if ch["check"] == "payments" and ch["actual"].isdigit()), None)
    pg = pg_stats(run_dir)
    res = resources_of(rows, lambda r: (r.get("k6_cpu") or 0) > 5)
    prep_res = resources_of(prep_rows) if prep_rows else None
    serverlog = server_log_summary(os.path.join(run_dir, "server.log"))

    pay_hist = hist_buckets(prom, "payment_duration_seconds")
    pool_wait = hist_diff(hist_buckets(prom, "db_pool_wait_seconds"), hist_buckets(prom_prep, "db_pool_wait_seconds"))
    pool_wait_sum = (counter_sum(prom, "db_pool_wait_seconds_sum") or 0) - (counter_sum(prom_prep, "db_pool_wait_seconds_sum") or 0)
    pool_wait_n = (counter_sum(prom, "db_pool_wait_seconds_count") or 0) - (counter_sum(prom_prep, "db_pool_wait_seconds_count") or 0)
    statements = (counter_sum(prom, "db_statements_total") or 0) - (counter_sum(prom_prep, "db_statements_total") or 0)
    retries_after = counter_by(prom, "db_retries_total", "reason")
    retries_before = counter_by(prom_prep, "db_retries_total", "reason")
    retries = {k: v - retries_before.get(k, 0) for k, v in retries_after.items() if v - retries_before.get(k, 0)}
    server_side = {
        "payment_mean_ms": (1000 * counter_sum(prom, "payment_duration_seconds_sum") / counter_sum(prom, "payment_duration_seconds_count")
                            if counter_sum(prom, "payment_duration_seconds_count") else None),
        "payment_p50_s_le": hist_quantile(pay_hist, 0.5),
        "payment_p95_s_le": hist_quantile(pay_hist, 0.95),
        "payment_p99_s_le": hist_quantile(pay_hist, 0.99),
        "payments_by_outcome": counter_by(prom, "payments_total", "outcome"),
        "db_pool_wait_mean_ms": 1000 * pool_wait_sum / pool_wait_n if pool_wait_n else None,
        "db_pool_wait_p50_s_le": hist_quantile(pool_wait, 0.5),
        "db_pool_wait_p99_s_le": hist_quantile(pool_wait, 0.99),
        "db_pool_checkouts": pool_wait_n,
        "db_statements": statements,
        "db_statements_per_payment_request": statements / pay_reqs if pay_reqs else None,
        "db_retries": retries,
        "deadlocks": pg.get("deadlocks"),
        "xact_commit": pg.get("xact_commit"),
        "xact_rollback": pg.get("xact_rollback"),
        "xact_commit_per_payment_request": pg.get("xact_commit") / pay_reqs if pay_reqs and pg.get("xact_commit") else None,
    }
    prep_info = {}
    if prep:
        prep_info = {
            "seconds": prep.get("seconds"), "holds": prep.get("holds"), "wanted": prep.get("wanted"),
            "holds_per_second": prep["holds"] / prep["seconds"] if prep.get("seconds") else None,
        }
        if prep_s:
            prep_info["hold_latency_ms"] = lat(prep_s, "prepare_hold_ms", ("med", "p(95)", "p(99)", "max"))
            prep_info["failed"] = int(prep_s.get("prepare_failed", "count", 0) or 0)
            prep_info["errors_by_code"] = errors_by(prep_s, "code")
            prep_info["requests"] = {op: int(prep_s.get(f"http_reqs{{op:{op}}}", "count", 0) or 0) for op in ("enterQueue", "queueStatus", "holdSeats")}
        if prep_res:
            prep_info["resources"] = prep_res

    plan = judged(s)
    order = ["http_req_duration{op:pay}", "payment_succeeded", "graphql_failed"]
    plan.sort(key=lambda t: (order.index(t[0]) if t[0] in order else len(order), t[1]))
    goals = [
        (f"throughput: the offered {rate:,} payments/s completed (≥ 99 %)", f"{fmt(tps, 0)} /s ({ok:,} in {duration} s)",
         tps is not None and tps >= 0.99 * rate),
        ("max throughput > 500 TPS (plan, success criteria)", f"{fmt(tps, 0)} /s", tps is not None and tps > 500),
        ("deadlocks < 10 (`pg_stat_database.deadlocks` delta during the measured phase)", fmt(pg.get("deadlocks"), 0),
         None if pg.get("deadlocks") is None else pg.get("deadlocks") < 10),
        ("data consistency 100 %: every SQL check as expected",
         f"{sum(1 for ch in checks if ch['passed'])} of {sum(1 for ch in checks if ch['passed'] is not None)} checks" if checks else "not run",
         sql_ok),
        ("payments in the database = receipts k6 got", f"{fmt(db_payments, 0)} vs {ok:,}",
         None if db_payments is None else db_payments == ok),
        ("every started payment had a prepared hold", f"{no_hold:,} without", no_hold == 0),
    ]
    passed = all(t[2] for t in plan) and all(g[2] is not False for g in goals) and ctx["k6_exit"] in (0, 99)
    k6_broke = ctx["k6_exit"] not in (0, 99)

    # ---- what limited it
    notes = []
    if tps is not None and rate and tps < 0.99 * rate:
        notes.append(
            f"Throughput: {rate:,} payments/s were offered and {fmt(tps, 0)}/s completed ({fmt(steady_tps, 0)}/s in the steady "
            f"10 s windows). k6 started {started:,} payments and dropped {dropped:,} it had no free VU for: with up to {max_vus:,} "
            f"payments in flight, the server answered more slowly than they arrived, so the in-flight ones queued (P50 "
            f"{ms(lat_all.get('med'))}) and the rest were never sent. This is the ceiling of this machine, not a safe operating point."
        )
    if res.get("machine_busy_avg") is not None:
        notes.append(
            f"CPU: the machine was {fmt(res['machine_busy_avg'], 0)} % busy on average while paying (peak {fmt(res['machine_busy_peak'], 0)} %): "
            f"PostgreSQL {fmt(res['pg_cpu_avg'], 0)} %, server {fmt(res['server_cpu_avg'], 0)} %, k6 {fmt(res['k6_cpu_avg'], 0)} %, "
            f"Redis {fmt(res['redis_cpu_avg'], 0)} % of one core, on {ctx['machine']['nproc']} cores shared by all of them. "
            + ("PostgreSQL is the largest consumer: the payment transaction and its commit are the expensive part."
               if (res.get("pg_cpu_avg") or 0) >= max(res.get("server_cpu_avg") or 0, res.get("k6_cpu_avg") or 0) else "")
        )
    if server_side["db_pool_wait_mean_ms"] is not None:
        notes.append(
            f"Connection pool ({server_env.get('DATABASE_POOL_SIZE', '32')} connections): "
            f"{fmt(res.get('pool_in_use_avg'), 0)} in use on average (peak {fmt(res.get('pool_in_use_peak'), 0)}); a checkout waited "
            f"{fmt(server_side['db_pool_wait_mean_ms'], 1)} ms on average (P99 {le_ms(server_side['db_pool_wait_p99_s_le'])}) over "
            f"{server_side['db_pool_checkouts']:,.0f} checkouts, i.e. {server_side['db_pool_checkouts'] / max(1, pay_reqs):.1f} per payment "
            f"(the pre-checks, then the transaction)."
            + (" A saturated pool in front of a saturated PostgreSQL: a larger pool would only move the queue into PostgreSQL."
               if (res.get("pool_in_use_avg") or 0) >= 0.9 * float(server_env.get("DATABASE_POOL_SIZE", "32")) else "")
            + (f" {codes.get('UNAVAILABLE', 0):,} payment{'s' if codes.get('UNAVAILABLE') != 1 else ''} waited longer than "
               f"DATABASE_POOL_TIMEOUT_MS for a connection and {'were' if codes.get('UNAVAILABLE') != 1 else 'was'} answered UNAVAILABLE."
               if codes.get("UNAVAILABLE") else "")
        )
    if server_side["xact_commit_per_payment_request"]:
        notes.append(
            f"Per payment request PostgreSQL committed {server_side['xact_commit_per_payment_request']:.1f} transactions and the server ran "
            f"{fmt(server_side['db_statements_per_payment_request'], 1)} SQL statements: the idempotency replay check, the reservation "
            f"and schedule lookups run as separate autocommit statements before the payment transaction (claim key, lock hold, "
            f"deduct, ledger, payment, seats, reservation, outbox, store receipt), each commit a WAL flush (synchronous_commit on)."
        )
    notes.append(
        f"Locks: each fan pays one hold at a time (a fan's payments are {users:,} iterations, ~{users / max(1, rate):.0f} s, apart), "
        f"so the per-user balance row lock is never contended; deadlocks {fmt(pg.get('deadlocks'), 0)}, transaction retries "
        + (", ".join(f"{k} {v:,.0f}" for k, v in retries.items()) if retries else "0") + "."
    )
    if prep_info:
        notes.append(
            f"Preparing: {prep_info.get('holds', 0):,} holds (and as many queue tokens) were made through the API in "
            f"{prep_info.get('seconds')} s ({fmt(prep_info.get('holds_per_second'), 0)} holds/s)"
            + (f", fewer than the {payments_target:,} that {rate:,}/s × {duration} s would need: this machine cannot start that many "
               f"payments in {duration} s anyway (see throughput), and making them all would take longer than a run should. "
               f"PREPARE_HOLDS={prep_wanted:,} was set so that no started payment lacks a hold."
               if prep_wanted < payments_target else ".")
        )
    charged = next((ch["actual"] for ch in checks if ch["check"].startswith("payments k6 saw fail")), None)
    if db_payments is not None and db_payments != ok:
        notes.append(
            f"The database holds {db_payments:,} payments, k6 got {ok:,} receipts. Of the payments k6 saw fail, the database "
            f"shows as paid: {charged or 'n/a'} (by the code k6 was answered). A payment answered TIMEOUT "
            f"(“the request took longer than REQUEST_TIMEOUT_MS”) can have committed: the server stops waiting for the "
            f"resolver but the work it started may finish. The fan was charged and told it failed; retrying with the same "
            f"idempotency key replays the receipt, so a client must treat TIMEOUT as “unknown” and retry with the same key."
        )
    n = interference_note(res)
    if n:
        notes.append(n)
    if codes:
        notes.append("Errors by code: " + ", ".join(f"{k} {v:,}" for k, v in codes.items()) + " (server log below, k6.log).")
    if k6_broke:
        notes.append(f"k6 exited with status {ctx['k6_exit']} (not a threshold failure): see k6.log.")

    # ---- markdown
    md = ["# Load test: concurrent payments (scenario 3)\n"]
    md.append(
        f"**Result: {'PASS' if passed else 'FAIL'}** — {rate:,} payments/s offered for {duration} s by fans with enough points, "
        f"each paying a hold made beforehand: {ok:,} paid ({fmt(tps, 0)}/s), payment P95 {ms(lat_all.get('p(95)'))}, "
        f"P99 {ms(lat_all.get('p(99)'))}, error rate {fmt((failed_rate or 0) * 100, 3)} %, deadlocks {fmt(pg.get('deadlocks'), 0)}, "
        f"SQL consistency {'all as expected' if sql_ok else 'FAILED'}.\n"
    )
    extra = []
    if prep_info:
        pl = prep_info.get("hold_latency_ms", {})
        extra.append((
            "prepare phase (not measured)",
            f"{prep_info.get('holds', 0):,} of {prep_info.get('wanted', 0):,} holds made through the API in {prep_info.get('seconds')} s "
            f"({fmt(prep_info.get('holds_per_second'), 0)}/s): per hold `enterQueue` (everyone admitted within a tick), then "
            f"`holdSeats` of a seat of its own with that Queue-Token; hold P50 / P95 {ms(pl.get('med'))} / {ms(pl.get('p(95)'))}; "
            f"{prep_info.get('failed', 0)} failed" + (f" ({', '.join(f'{k} {v}' for k, v in prep_info.get('errors_by_code', {}).items())})" if prep_info.get('errors_by_code') else "")
        ))
    md += run_md(ctx,
        f"k6 `constant-arrival-rate`: {rate:,} iterations/s for {duration} s ({payments_target:,} payments), "
        f"{pre_vus:,} VUs pre-allocated, at most {max_vus:,} (payments in flight). Iteration k pays prepared hold k: "
        f"`pay(reservationId, idempotencyKey)` with the fan's JWT and ACTIVE Queue-Token. {users:,} fans × {concerts} concerts "
        f"(one schedule each, a seat per fan), hold k = fan k mod {users:,} in concert k div {users:,}, so a fan pays at most one "
        f"hold at a time. Holds are read from a SharedArray, not from setup data.",
        extra)
    labels = {
        ("http_req_duration{op:pay}", "p(95)<500"): ("payment P95 < 500 ms", ms(lat_all.get("p(95)"))),
        ("http_req_duration{op:pay}", "p(99)<1000"): ("payment P99 < 1,000 ms (success criteria)", ms(lat_all.get("p(99)"))),
        ("payment_succeeded", "rate>0.995"): ("success rate > 99.5 %", f"{fmt((succ_rate or 0) * 100, 3)} %"),
        ("graphql_failed", "rate<0.005"): ("error rate < 0.5 %", f"{fmt((failed_rate or 0) * 100, 3)} % ({failed_count:,} of {pay_reqs:,})"),
    }
    md += thresholds_md(plan, labels, goals)

    md.append("## Results\n")
    md.append("| metric | value |\n|---|---|")
    md.append(f"| offered | {rate:,} payments/s for {duration} s = {payments_target:,} |")
    md.append(f"| started / dropped by k6 (no free VU) | {started:,} / {dropped:,} |")
    md.append(f"| paid (receipt with amount and balanceAfter) | **{ok:,}** → {fmt(tps, 1)} payments/s over {duration} s; steady windows {fmt(steady_tps, 0)}/s |")
    md.append(f"| success rate of the payments sent | {fmt((succ_rate or 0) * 100, 3)} % |")
    md.append(f"| payment latency P50 / P90 / P95 / P99 / max | {ms(lat_all.get('med'))} / {ms(lat_all.get('p(90)'))} / {ms(lat_all.get('p(95)'))} / "
              f"{ms(lat_all.get('p(99)'))} / {ms(lat_all.get('max'))} |")
    md.append(f"| latency of successful payments P50 / P95 / P99 / max | {lat_row(lat_ok)} |")
    if lat_fail.get("max"):
        md.append(f"| latency of failed payments P50 / P95 / max | {ms(lat_fail.get('med'))} / {ms(lat_fail.get('p(95)'))} / {ms(lat_fail.get('max'))} |")
    md.append("| errors by code | " + (", ".join(f"`{k}` {v:,}" for k, v in codes.items()) or "none") + " |")
    md.append(f"| VUs in use, peak / allocated | {fmt(vus_peak, 0)} / {fmt(vus_max, 0)} |")
    md.append(f"| payments started without a prepared hold | {no_hold:,} |")
    md.append("")
    if windows:
        md.append("Over time (10 s windows by when the payment was sent):\n")
        md.append("| from (s) | sent /s | P50 | P95 | P99 | succeeded |\n|---|---|---|---|---|---|")
        for w in windows:
            md.append(f"| {w['from_s']} | {w['per_s']:,.0f} | {ms(w['p50_ms'])} | {ms(w['p95_ms'])} | {ms(w['p99_ms'])} | "
                      f"{fmt((w['succeeded'] or 0) * 100, 2)} % |")
        md.append("")

    md.append("## Data consistency (SQL)\n")
    md += sql_md(checks) if checks else ["(not run)\n"]

    md.append("## Server view\n")
    md.append("| metric | value |\n|---|---|")
    md.append(f"| payment time in the server (`payment_duration_seconds`) mean / P50 / P95 / P99 | "
              f"{fmt(server_side['payment_mean_ms'], 1, ' ms')} / {le_ms(server_side['payment_p50_s_le'])} / "
              f"{le_ms(server_side['payment_p95_s_le'])} / {le_ms(server_side['payment_p99_s_le'])} |")
    md.append("| payments by outcome (`payments_total`) | " + (", ".join(f"{k} {v:,.0f}" for k, v in server_side["payments_by_outcome"].items()) or "n/a") + " |")
    md.append(f"| database pool wait, measured phase: mean / P50 / P99 | {fmt(server_side['db_pool_wait_mean_ms'], 1, ' ms')} / "
              f"{le_ms(server_side['db_pool_wait_p50_s_le'])} / {le_ms(server_side['db_pool_wait_p99_s_le'])} ({server_side['db_pool_checkouts']:,.0f} checkouts) |")
    md.append(f"| database pool in use (1 s samples) avg / peak | {fmt(res.get('pool_in_use_avg'), 0)} / {fmt(res.get('pool_in_use_peak'), 0)} of {server_env.get('DATABASE_POOL_SIZE', '32')} |")
    md.append(f"| SQL statements per payment request | {fmt(server_side['db_statements_per_payment_request'], 1)} |")
    md.append("| transactions retried (deadlock / serialization / lock timeout; `db_retries_total`) | "
              + (", ".join(f"{k or 'all'} {v:,.0f}" for k, v in retries.items()) if retries else "0") + " |")
    md.append(f"| PostgreSQL deadlocks during the measured phase (`pg_stat_database.deadlocks` delta) | {fmt(pg.get('deadlocks'), 0)} |")
    md.append(f"| PostgreSQL transactions committed / rolled back during the measured phase | {fmt(pg.get('xact_commit'), 0)} / {fmt(pg.get('xact_rollback'), 0)} |")
    md.append("")
    md += log_md(serverlog)

    md.append("## Resources (sampled every second)\n")
    md += resources_md(res, "while paying")
    if prep_res:
        md.append(f"Prepare phase: machine {fmt(prep_res['machine_busy_avg'], 0)} % busy on average; server {fmt(prep_res['server_cpu_avg'], 0)} %, "
                  f"PostgreSQL {fmt(prep_res['pg_cpu_avg'], 0)} %, k6 {fmt(prep_res['k6_cpu_avg'], 0)} %, Redis {fmt(prep_res['redis_cpu_avg'], 0)} %; "
                  f"build processes seen: {fmt(prep_res.get('build_processes_peak'), 0)}.\n")
    if rows:
        md.append("Timeline (measured phase):\n")
        md += timeline_md(rows, 1, 40)

    md.append("## What limited it\n")
    for n_ in notes:
        md.append(f"- {n_}")
    md.append("")
    md.append("## Reproduce\n")
    md.append(
        f"```sh\n{ctx['command']}\n```\n\nRaw artefacts of this run (not committed): `{ctx['run_dir_rel']}/` "
        "(both k6 summaries and logs, prepared.json, samples, server log, /metrics, sql-checks.tsv, pg_stat_database). "
        f"Numbers in `{os.path.basename(ctx['out'])}.json`."
    )

    data = common_json(ctx, "payments", passed, plan)
    data.update({
        "goals": [{"goal": g, "measured": m_, "passed": ok_} for g, m_, ok_ in goals],
        "load_model": {"rate": rate, "duration_s": duration, "payments_offered": payments_target, "users": users,
                       "concerts": concerts, "pre_allocated_vus": pre_vus, "max_vus": max_vus,
                       "holds_prepared_wanted": prep_wanted},
        "prepare": prep_info,
        "results": {
            "started": started, "dropped": dropped, "paid": ok, "payments_per_second": tps,
            "steady_payments_per_second": steady_tps, "success_rate": succ_rate, "error_rate": failed_rate,
            "errors": failed_count, "latency_ms": lat_all, "latency_ok_ms": lat_ok, "latency_failed_ms": lat_fail,
            "errors_by_code": codes, "vus_peak": vus_peak, "vus_allocated": vus_max, "no_hold_left": no_hold,
            "payments_in_database": db_payments,
        },
        "windows": windows,
        "sql_checks": checks,
        "pg_stat_database_delta": pg,
        "server_metrics": server_side,
        "resources": res,
        "server_log": serverlog,
        "notes": notes,
        "samples": rows,
    })
    return "\n".join(md) + "\n", data, passed



REPORTS = {"queue-wave": report_queue_wave, "seat-stampede": report_seat_stampede, "payments": report_payments}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=sorted(REPORTS))
    p.add_argument("--run-dir", required=True)
    p.add_argument("--out", required=True, help="path without extension")
    p.add_argument("--command", required=True)
    p.add_argument("--k6-exit", type=int, default=0)
    p.add_argument("--started", default="")
    p.add_argument("--finished", default="")
    p.add_argument("--k6-version", default="")
    a = p.parse_args()

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run_dir = a.run_dir
    with open(os.path.join(run_dir, "summary.json"), encoding="utf-8") as f:
        summary = Summary(json.load(f))
    server_env = {}
    for line in (read(os.path.join(run_dir, "server.env"), "") or "").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            server_env[k] = v
    k6_cmd = (read(os.path.join(run_dir, "k6.cmd"), "") or "").strip()
    k6_env = dict(re.findall(r"-e\s+([A-Z0-9_]+)=(\S+)", k6_cmd))
    # Shorten absolute paths in the recorded k6 command.
    k6_cmd_short = k6_cmd.replace(root + "/", "")
    k6_cmd_short = re.sub(r"^\S*/k6 ", "k6 ", k6_cmd_short)
    k6_cmd_short = re.sub(r"JWT_SECRET=\S+", "JWT_SECRET=…", k6_cmd_short)
    ctx = {
        "summary": summary,
        "samples": samples(os.path.join(run_dir, "samples.tsv")),
        "server_env": server_env,
        "k6_env": k6_env,
        "k6_cmd": k6_cmd_short,
        "k6_version": a.k6_version,
        "k6_exit": a.k6_exit,
        "prometheus": prometheus(read(os.path.join(run_dir, "metrics.txt"), "")),
        "redis": redis_store_stats(run_dir),
        "machine": machine(),
        "source": json.loads(read(os.path.join(run_dir, "source.json"), "null") or "null") or source_state(root),
        "command": a.command,
        "started": a.started,
        "finished": a.finished,
        "out": a.out,
        "run_dir_rel": os.path.relpath(run_dir, root),
        "run_dir": run_dir,
    }
    md, data, passed = REPORTS[a.scenario](ctx)
    with open(a.out + ".md", "w", encoding="utf-8") as f:
        f.write(md)
    with open(a.out + ".json", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
