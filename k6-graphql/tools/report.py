#!/usr/bin/env python3
"""Writes docs/results/<scenario>.md and .json from one scripts/load run directory.

  report.py queue-wave --run-dir .run/load/queue-wave-<time> --out docs/results/queue-wave \
      --command "scripts/load queue-wave" --k6-exit 0 --started ... --finished ... --k6-version ...

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


REPORTS = {"queue-wave": report_queue_wave}


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
