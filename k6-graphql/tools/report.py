#!/usr/bin/env python3
"""Writes docs/results/<scenario>.md and .json from one scripts/load run directory.

  report.py queue-wave --run-dir .run/load/queue-wave-<time> --out docs/results/queue-wave \
      --command "scripts/load queue-wave" --k6-exit 0 --started ... --finished ... --k6-version ...

Scenarios: queue-wave, seat-stampede, payments, seat-expiry, mixed, spike, breakpoint,
subscriptions, ceiling (all but queue-wave also read sql-checks.tsv and pgstat.before/after; payments
and seat-expiry their prepare phase's artefacts; seat-expiry expiry-sql.tsv; ceiling pgbench-*.log),
and smoke (the summary of `scripts/load smoke`: --run-dir holds runs.tsv and each scenario's report).
Every report gets a section with `concert-reservation verify`'s result (verify.json/verify.status)
when the runner ran it; a failed verify fails the report.

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



def instances_text(src):
    """'2 instances (k6 VUs spread over them; CPU and RSS summed) of a ' when a run had several."""
    n = int(src.get("instances", 1) or 1)
    return f"{n} instances (k6 VUs spread over them; server CPU and RSS are their sums) of a " if n > 1 else ""

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
        f"| server | {instances_text(src)}{src.get('profile', 'release')} build of `{src['commit']}`"
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
        label, measured = label_of(labels, name, expr)
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

    md += conclusion_md(ctx, notes, "k6 summary and log, samples.tsv, server log, /metrics, Redis stats")

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
        f"| server | {instances_text(src)}{src.get('profile', 'release')} build of `{src['commit']}`"
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


# Latency limits of a run with LATENCY_SCALE (smoke): labels are keyed by the plan's limits.
SCALE = 1.0


def label_of(labels, name, expr):
    """The label of threshold (name, expr), also when its latency limit was scaled by SCALE."""
    if (name, expr) in labels:
        return labels[(name, expr)]
    m = re.match(r"^(p\(\d+\)|max|avg|med)<(\d+(?:\.\d+)?)$", expr)
    if m and SCALE != 1:
        base = float(m.group(2)) / SCALE
        key = (name, f"{m.group(1)}<{base:g}")
        if key in labels:
            label, measured = labels[key]
            return f"{label} (× {SCALE:g} here: {m.group(2)})", measured
    return f"`{name}` {expr}", ""


def thresholds_md(plan, labels, goals):
    md = ["## Thresholds and goals\n", "| criterion | measured | result |", "|---|---|---|"]
    for name, expr, ok in plan:
        label, measured = label_of(labels, name, expr)
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

    md += conclusion_md(ctx, notes, "k6 summary and log, samples.tsv, server log, /metrics, sql-checks.tsv, pg_stat_database")

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
        ("max throughput > 500 TPS (plan, success criteria)", f"{fmt(tps, 0)} /s",
         None if is_smoke(ctx) else (tps is not None and tps > 500)),
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

    md += conclusion_md(ctx, notes, "both k6 summaries and logs, prepared.json, samples, server log, /metrics, sql-checks.tsv, pg_stat_database")

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



# ------------------------------------------------------------------------------------------------
# shared by the scenarios below (seat-expiry, mixed, spike, breakpoint, subscriptions, ceiling)


def run_seconds(ctx):
    """Seconds from the k6 run's start to its end (the runner's --started / --finished)."""
    import datetime
    try:
        parse = lambda v: datetime.datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
        return (parse(ctx["finished"]) - parse(ctx["started"])).total_seconds()
    except (ValueError, KeyError):
        return None


def load_summary(run_dir, name):
    path = os.path.join(run_dir, name)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return Summary(json.load(f))


def tsv(path):
    """Rows of a TSV with a header line, numbers as floats (None when empty)."""
    return samples(path)


def counter_deltas(rows, key):
    """Per-sample increases of a cumulative counter column: [(t, delta per second)]."""
    out = []
    prev = None
    for r in rows:
        v = r.get(key)
        if v is None:
            continue
        if prev is not None and r["t"] > prev[0]:
            out.append((r["t"], max(0.0, (v - prev[1]) / (r["t"] - prev[0]))))
        prev = (r["t"], v)
    return out


def column_peak(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return max(vals) if vals else None


def hist_rows(buckets):
    """[(le, count in bucket, cumulative share)] of a cumulative histogram."""
    ordered = sorted(buckets.items())
    total = ordered[-1][1] if ordered else 0
    out, prev = [], 0
    for le, c in ordered:
        out.append((le, c - prev, c / total if total else None))
        prev = c
    return out


def hist_md(buckets, unit="s"):
    md = ["| ≤ bound | in bucket | cumulative |", "|---|---|---|"]
    for le, n, cum in hist_rows(buckets):
        if n == 0 and (cum or 0) >= 1 and le != math.inf:
            continue
        bound = "+Inf" if le == math.inf else f"{le:g} {unit}"
        md.append(f"| {bound} | {n:,.0f} | {fmt((cum or 0) * 100, 1)} % |")
    md.append("")
    return md


def verify_info(run_dir):
    """The outcome of `concert-reservation verify` the runner ran after the SQL checks."""
    status = (read(os.path.join(run_dir, "verify.status"), "") or "").strip()
    data = None
    try:
        data = json.loads(read(os.path.join(run_dir, "verify.json"), "") or "null")
    except ValueError:
        data = None
    if not status:
        return {"status": "not run", "passed": None, "data": None}
    if status == "not available":
        return {"status": "not available", "passed": None, "data": None}
    passed = status == "0" and (data is None or data.get("passed") is not False)
    log = (read(os.path.join(run_dir, "verify.log"), "") or "").splitlines()[-20:]
    return {"status": "passed" if passed else f"FAILED (exit {status})", "passed": passed, "data": data, "log_tail": log}


def verify_md(v):
    md = ["## Integrity (concert-reservation verify)\n"]
    if v["status"] == "not available":
        md.append("Not run: the server build of this run has no `concert-reservation verify` subcommand yet.\n")
        return md
    if v["status"] == "not run":
        md.append("Not run (no database checks in this run).\n")
        return md
    data = v.get("data") or {}
    checks = data.get("checks") or []
    md.append(f"`concert-reservation verify --json` on the load database after the run: **{v['status']}**"
              + (f" ({sum(1 for c in checks if c.get('passed'))} of {len(checks)} checks)" if checks else "") + ".\n")
    if checks:
        md.append("| check | what it means | violations | result |\n|---|---|---|---|")
        for c in checks:
            md.append(f"| `{c.get('name')}` | {c.get('description', '')} | {c.get('count', 'n/a')} | "
                      f"{pass_fail(c.get('passed'))} |")
        md.append("")
        bad = [c for c in checks if not c.get("passed") and c.get("sample")]
        for c in bad:
            md.append(f"Sample of `{c.get('name')}`: `{json.dumps(c.get('sample'))[:400]}`\n")
    points = data.get("points")
    if points:
        md.append("Points: " + ", ".join(f"{k} {v_:,}" if isinstance(v_, (int, float)) else f"{k} {v_}" for k, v_ in points.items()) + "\n")
    if not checks and v.get("log_tail"):
        md.append("```\n" + "\n".join(v["log_tail"]) + "\n```\n")
    return md


def reproduce_md(ctx, what):
    return ["## Reproduce\n",
            f"```sh\n{ctx['command']}\n```\n\nRaw artefacts of this run (not committed): `{ctx['run_dir_rel']}/` "
            f"({what}). Numbers in `{os.path.basename(ctx['out'])}.json`."]


def conclusion_md(ctx, notes, what):
    """The closing sections of every report: what limited the run, and how to reproduce it."""
    return ["## What limited it\n"] + [f"- {n}" for n in notes] + [""] + reproduce_md(ctx, what)


def is_smoke(ctx):
    return ctx["k6_env"].get("SMOKE") == "1" or float(ctx["k6_env"].get("LATENCY_SCALE", "1") or 1) != 1


def smoke_note(ctx):
    if not is_smoke(ctx):
        return []
    return [f"> Smoke run: tiny load, latency limits × {ctx['k6_env'].get('LATENCY_SCALE', '10')} (LATENCY_SCALE), "
            f"{ctx['source'].get('profile', 'release')} build. It checks that the scenario works end to end, not the plan's numbers.\n"]


def finish(ctx, scenario, md, data, passed):
    """Common tail: the JSON header fields every report has."""
    out = common_json(ctx, scenario, passed, data.pop("_plan", []))
    out.update(data)
    return "\n".join(md) + "\n", out, passed


# ------------------------------------------------------------------------------------------------
# seat-expiry


def report_seat_expiry(ctx):
    s = ctx["summary"]
    env = ctx["k6_env"]
    server_env = ctx["server_env"]
    run_dir = ctx["run_dir"]
    rows = ctx["samples"]
    prom = ctx["prometheus"]
    prom_prep = prometheus(read(os.path.join(run_dir, "metrics.prepare.txt"), ""))
    seats = int(env.get("SEATS", 0))
    per_hold = int(env.get("SEATS_PER_HOLD", 1))
    fans = int(env.get("FANS", 0))
    target = float(env.get("TARGET_SECONDS", 60))
    ttl = int(server_env.get("HOLD_TTL_SECONDS", env.get("HOLD_TTL", 0)) or 0)
    expires_at = int(env.get("EXPIRES_AT_MS", 0))
    holds_made = int(env.get("HOLDS_MADE", 0))
    seats_held = int(env.get("SEATS_HELD", 0))
    prep = json.loads(read(os.path.join(run_dir, "prepare.json"), "{}") or "{}")
    prep_s = load_summary(run_dir, "prepare-summary.json")
    one = lambda name: s.get(name, "max")  # noqa: E731  (each view is recorded once)

    views = {
        "api": one("expiry_api_available_seconds"),
        "seat_map": one("expiry_seatmap_available_seconds"),
        "swept": one("expiry_swept_seconds"),
        "relayed": one("expiry_relayed_seconds"),
        "consumed": one("expiry_consumed_seconds"),
        "released": one("expiry_released_seconds"),
    }
    # The database's view (runner's SQL poll every ~0.5 s): first sample at or after the expiry
    # instant where the condition held.
    sql_rows = tsv(os.path.join(run_dir, "expiry-sql.tsv"))

    def sql_first(cond):
        for r in sql_rows:
            if r.get("t_ms") is not None and r["t_ms"] >= expires_at and cond(r):
                return round((r["t_ms"] - expires_at) / 1000, 2)
        return None

    sql_view = {
        "reservations_expired_s": sql_first(lambda r: r["reservations_held"] == 0),
        "events_published_s": sql_first(lambda r: r["expired_events"] >= holds_made and r["expired_unpublished"] == 0),
        "seats_back_s": sql_first(lambda r: r["seats_held"] == 0),
    }
    sql_samples_after = sum(1 for r in sql_rows if (r.get("t_ms") or 0) >= expires_at)

    # Server counters over the watch (prepare-phase values subtracted).
    def delta(name, match=None):
        a = counter_sum(prom, name, match)
        b = counter_sum(prom_prep, name, match) or 0
        return None if a is None else a - b
    released_by = {"consumer": delta("seats_released_total", {"by": "consumer"}) or 0,
                   "backstop": delta("seats_released_total", {"by": "backstop"}) or 0}
    events_by = {k: v - (counter_by(prom_prep, "consumer_events_total", "outcome").get(k, 0))
                 for k, v in counter_by(prom, "consumer_events_total", "outcome").items()}
    published = delta("outbox_published_total")
    expired_total = delta("holds_expired_total")
    latency = hist_diff(hist_buckets(prom, "expiry_release_latency_seconds"), hist_buckets(prom_prep, "expiry_release_latency_seconds"))
    pub_hist = hist_diff(hist_buckets(prom, "outbox_publish_duration_seconds"), hist_buckets(prom_prep, "outbox_publish_duration_seconds"))
    lat_count = max(latency.values()) if latency else 0
    lat_sum = (counter_sum(prom, "expiry_release_latency_seconds_sum") or 0) - (counter_sum(prom_prep, "expiry_release_latency_seconds_sum") or 0)

    # Throughput from the 1 s samples: relay (published) and consumer (events handled).
    pub_rates = counter_deltas(rows, "outbox_published")
    con_rates = counter_deltas(rows, "consumer_events")
    relay_peak = max((v for _, v in pub_rates), default=None)
    consumer_peak = max((v for _, v in con_rates), default=None)
    relay_avg = holds_made / views["relayed"] if views["relayed"] else None
    # From the expiry instant the sweeper first has to notice (it runs every EXPIRY_SWEEP_INTERVAL_MS).
    consumer_avg = holds_made / views["consumed"] if views["consumed"] else None
    lag_k6 = s.get("expiry_peak_lag", "max")
    lag_server = max(column_peak(rows, "consumer_lag") or 0, s.get("expiry_server_consumer_lag", "max") or 0)
    lag_peak = max(lag_k6 or 0, lag_server or 0)

    checks = sql_checks(run_dir)
    sql_ok = bool(checks) and all(ch["passed"] is not False for ch in checks)
    pg = pg_stats(run_dir)
    res = resources_of(rows)
    serverlog = server_log_summary(os.path.join(run_dir, "server.log"))

    plan = judged(s)
    order = ["expiry_released_seconds", "expiry_api_available_seconds", "expiry_seatmap_available_seconds",
             "expiry_not_back", "expiry_peak_lag"]
    plan.sort(key=lambda t: order.index(t[0]) if t[0] in order else len(order))
    goals = [
        (f"every seat back on sale in the database (no seat HELD, SQL poll) within {target:g} s of the expiry",
         secs(sql_view["seats_back_s"]), sql_view["seats_back_s"] is not None and sql_view["seats_back_s"] < target),
        ("released by the consumer, none left for the backstop (EXPIRY_BACKSTOP_SECONDS)",
         f"consumer {released_by['consumer']:,.0f}, backstop {released_by['backstop']:,.0f}", released_by["backstop"] == 0),
        ("every seat was held before the wave", f"{seats_held:,} of {seats:,} seats in {holds_made:,} holds",
         seats_held == seats),
        ("data consistency: every SQL check as expected (every hold EXPIRED, announced once, its seats AVAILABLE)",
         f"{sum(1 for ch in checks if ch['passed'])} of {sum(1 for ch in checks if ch['passed'] is not None)} checks" if checks else "not run",
         sql_ok),
    ]
    passed = all(ok for _, _, ok in plan) and all(ok is not False for _, _, ok in goals) and ctx["k6_exit"] in (0, 99)

    notes = []
    notes.append(
        f"The wave: {holds_made:,} holds ({seats_held:,} seats) expired at one instant"
        + (f" (their ends were aligned to the last hold's; made through the API over "
           f"{(prep.get('last_expires_at_ms', 0) - prep.get('first_expires_at_ms', 0)) / 1000:.1f} s)" if prep.get("aligned") else "")
        + f". The sweeper (every {server_env.get('EXPIRY_SWEEP_INTERVAL_MS')} ms, batches of {server_env.get('EXPIRY_SWEEP_BATCH')}) "
        f"had marked them all EXPIRED {secs(views['swept'])} after it (SQL: {secs(sql_view['reservations_expired_s'])}); the relay "
        f"(every {server_env.get('OUTBOX_RELAY_INTERVAL_MS')} ms, {server_env.get('OUTBOX_RELAY_BATCH')} rows a pass) had published every "
        f"seats.expired event at {secs(views['relayed'])}; the consumer had handled them all at {secs(views['consumed'])} and every seat was "
        f"released at {secs(views['released'])} (SQL: {secs(sql_view['seats_back_s'])})."
    )
    notes.append(
        f"What a fan sees: the API counts a seat whose hold ran out as AVAILABLE at once, before any sweep (README, "
        f"“no seat is stuck”): `availableSeats` showed all {seats:,} at {secs(views['api'])} and the seat map at "
        f"{secs(views['seat_map'])}; both views poll, so these include up to 0.25 s / 1 s of polling delay. The pipeline's "
        f"times are when the rows were really released and `seatChanges` subscribers told."
    )
    notes.append(
        f"The consumer handles one event at a time (a seats.expired event per hold: one UPDATE of the hold's seats, the seat "
        f"map cache dropped and a `seatChanges` message published in Redis, the fan's queue token ended), so there is no "
        f"separate “batch update” or “cache invalidation” step to time: both are inside each event's handling and inside "
        f"`expiry_release_latency_seconds` (hold expiry → seats released). The sweeper's batches are not timed by the server."
    )
    if lag_server == 0 and (lag_k6 or 0) > 0:
        notes.append(
            f"The server's `consumer_lag` gauge read 0 throughout while {lag_k6:,.0f} events were published and not yet consumed "
            f"(outbox_published_total − consumer_events_total, sampled every second): the consumer measures its lag only every "
            f"5 s and only right after handling a message, so a burst shorter than that is never seen by the gauge. The peak lag "
            f"above is the larger of the two."
        )
    if released_by["backstop"]:
        notes.append(f"The backstop freed {released_by['backstop']:,.0f} seats: the consumer had not released them within "
                     f"EXPIRY_BACKSTOP_SECONDS ({server_env.get('EXPIRY_BACKSTOP_SECONDS')} s) of their expiry.")
    notes.append(f"Hold TTL {ttl} s instead of the plan's 5 minutes, so the run stays short (--ttl 300 for the literal plan); "
                 f"how long a hold lasted does not change what happens when it runs out.")
    n = interference_note(res)
    if n:
        notes.append(n)

    md = [f"# Load test: seat-expiry batch (scenario 4)\n"]
    md += smoke_note(ctx)
    md.append(
        f"**Result: {'PASS' if passed else 'FAIL'}** — {seats_held:,} held seats ({holds_made:,} holds) expired together; "
        f"every seat back on sale {secs(sql_view['seats_back_s'])} after (database), {secs(views['api'])} in the API; peak consumer lag "
        f"{fmt(lag_peak, 0)} messages; relay {fmt(relay_avg, 0)} events/s over the wave (peak {fmt(relay_peak, 0)}/s); "
        f"expiry → release P95 {le_s(hist_quantile(latency, 0.95))}; SQL consistency {'all as expected' if sql_ok else 'FAILED'}.\n"
    )
    pl = lat(prep_s, "prepare_hold_ms") if prep_s else {}
    md += run_md(ctx,
        f"Prepare (not measured): {fans:,} fans each `enterQueue`, then `holdSeats` of {per_hold} seat(s) of their own with the "
        f"ACTIVE Queue-Token ({env.get('PREP_VUS', 20)} VUs, {env.get('PREP_BATCH', 10)} in parallel each); holds of {ttl} s. "
        f"Then every hold's end was set (SQL) to the last one's, so all expire in one instant. Watch (measured): one VU polls "
        f"`availableSeats` every 0.25 s, the seat map and /metrics every second, from 2 s before the expiry until every view "
        f"saw every seat back (at most {env.get('EXPIRY_WAIT_SECONDS', 3 * target):g} s); the runner polls SQL every ~0.5 s.",
        [("prepare phase", f"{prep.get('holds', 0):,} holds in {prep.get('seconds')} s; hold P50 / P95 {ms(pl.get('med'))} / {ms(pl.get('p(95)'))}; "
                           f"{int(prep_s.get('prepare_failed', 'count', 0) or 0) if prep_s else 0} failed")])
    labels = {
        ("expiry_released_seconds", f"max<{target:g}"): (f"every seat released (server counters) within {target:g} s", secs(views["released"])),
        ("expiry_api_available_seconds", f"max<{target:g}"): (f"API `availableSeats` shows every seat within {target:g} s", secs(views["api"])),
        ("expiry_seatmap_available_seconds", f"max<{target:g}"): (f"the seat map shows every seat AVAILABLE within {target:g} s", secs(views["seat_map"])),
        ("expiry_not_back", "count<1"): ("no view still missing seats when the watch ended", f"{int(s.get('expiry_not_back', 'count', 0) or 0)}"),
        ("expiry_peak_lag", "max<1000"): ("peak consumer lag < 1,000 messages (success criteria)", fmt(lag_peak, 0)),
    }
    md += thresholds_md(plan, labels, goals)

    md.append("## Results\n")
    md.append("Seconds after the expiry instant when each stage had finished the whole batch:\n")
    md.append("| stage | server counters (k6, 1 s) | database (SQL, ~0.5 s) |\n|---|---|---|")
    md.append(f"| every hold marked EXPIRED (sweeper) | {secs(views['swept'])} | {secs(sql_view['reservations_expired_s'])} |")
    md.append(f"| every seats.expired event published to Kafka (relay) | {secs(views['relayed'])} | {secs(sql_view['events_published_s'])} |")
    md.append(f"| every event handled (consumer) | {secs(views['consumed'])} | |")
    md.append(f"| every seat released (no seat HELD) | {secs(views['released'])} | **{secs(sql_view['seats_back_s'])}** |")
    md.append(f"| API `availableSeats` = {seats:,} | {secs(views['api'])} (GraphQL, every 0.25 s) | |")
    md.append(f"| seat map: every seat AVAILABLE | {secs(views['seat_map'])} (GraphQL, every 1 s) | |")
    md.append("")
    md.append("| metric | value |\n|---|---|")
    md.append(f"| producer throughput (relay → Kafka) | {fmt(relay_avg, 0)} events/s from the expiry to the last publish; peak {fmt(relay_peak, 0)}/s in a 1 s sample |")
    md.append(f"| consumer throughput | {fmt(consumer_avg, 0)} events/s from the expiry to the last event handled; peak {fmt(consumer_peak, 0)}/s |")
    md.append(f"| peak consumer lag (published, not consumed) | {fmt(lag_k6, 0)} (k6, published − consumed); server gauge `consumer_lag` {fmt(lag_server, 0)} |")
    md.append(f"| events published during the watch / holds expired (server) | {fmt(published, 0)} / {fmt(expired_total, 0)} |")
    md.append("| consumer events by outcome | " + (", ".join(f"{k} {v:,.0f}" for k, v in events_by.items()) or "none") + " |")
    md.append(f"| seats released by the consumer / by the backstop | {released_by['consumer']:,.0f} / {released_by['backstop']:,.0f} |")
    md.append(f"| expiry → release latency (`expiry_release_latency_seconds`) mean / P50 / P95 / P99 | "
              f"{secs(lat_sum / lat_count) if lat_count else 'n/a'} / {le_s(hist_quantile(latency, 0.5))} / "
              f"{le_s(hist_quantile(latency, 0.95))} / {le_s(hist_quantile(latency, 0.99))} ({lat_count:,.0f} holds) |")
    md.append(f"| relay publish of one batch (`outbox_publish_duration_seconds`) P50 / P99 | {le_ms(hist_quantile(pub_hist, 0.5))} / "
              f"{le_ms(hist_quantile(pub_hist, 0.99))} ({max(pub_hist.values()) if pub_hist else 0:,.0f} batches) |")
    md.append(f"| watch requests: availableSeats P95 / seat map P95 | {ms(s.get('http_req_duration{op:availableSeats}', 'p(95)'))} / "
              f"{ms(s.get('http_req_duration{op:schedule}', 'p(95)'))} |")
    md.append("")
    if latency:
        md.append("End-to-end latency, hold expiry → seats back on sale (histogram of the server's "
                  "`expiry_release_latency_seconds`, one observation per hold the consumer released):\n")
        md += hist_md(latency)
    sql_tl = [r for r in sql_rows if (r.get("t_ms") or 0) >= expires_at - 2000][:40]
    if sql_tl:
        md.append("Database timeline (runner's SQL poll):\n")
        md.append("| s after expiry | seats HELD | reservations HELD | seats.expired events | of them unpublished |\n|---|---|---|---|---|")
        for r in sql_tl:
            md.append(f"| {(r['t_ms'] - expires_at) / 1000:.1f} | {fmt(r['seats_held'], 0)} | {fmt(r['reservations_held'], 0)} | "
                      f"{fmt(r['expired_events'], 0)} | {fmt(r['expired_unpublished'], 0)} |")
        md.append("")
    md.append("## Data consistency (SQL)\n")
    md += sql_md(checks) if checks else ["(not run)\n"]
    md.append("## Server view\n")
    md += log_md(serverlog)
    md.append("## Resources (sampled every second)\n")
    md += resources_md(resources_of(rows), "over the watch")
    pipe_rows = [r for r in rows if (r.get("outbox_published") is not None)]
    if pipe_rows:
        md.append("Pipeline timeline (1 s samples of /metrics; counters since the server started):\n")
        md.append("| t (s) | outbox backlog | published | consumer events | released (consumer / backstop) | holds expired | server CPU % | PostgreSQL CPU % |\n|---|---|---|---|---|---|---|---|")
        step = max(1, math.ceil(len(pipe_rows) / 50))
        for r in pipe_rows[::step]:
            md.append(f"| {r['t']:.0f} | {fmt(r.get('outbox_backlog'), 0)} | {fmt(r.get('outbox_published'), 0)} | "
                      f"{fmt(r.get('consumer_events'), 0)} | {fmt(r.get('released_consumer'), 0)} / {fmt(r.get('released_backstop'), 0)} | "
                      f"{fmt(r.get('holds_expired'), 0)} | {fmt(r.get('server_cpu'), 0)} | {fmt(r.get('pg_cpu'), 0)} |")
        md.append("")
    md += conclusion_md(ctx, notes, "both k6 summaries and logs, samples, expiry-sql.tsv, server log, /metrics, sql-checks.tsv, verify.json")

    data = {
        "_plan": plan,
        "goals": [{"goal": g, "measured": m_, "passed": ok_} for g, m_, ok_ in goals],
        "load_model": {"seats": seats, "seats_per_hold": per_hold, "fans": fans, "hold_ttl_s": ttl, "target_s": target,
                       "aligned": prep.get("aligned")},
        "prepare": prep,
        "results": {
            "seconds_after_expiry": views, "sql_seconds_after_expiry": sql_view, "sql_samples_after_expiry": sql_samples_after,
            "holds_made": holds_made, "seats_held": seats_held, "relay_events_per_s": relay_avg, "relay_peak_per_s": relay_peak,
            "consumer_events_per_s": consumer_avg, "consumer_peak_per_s": consumer_peak, "peak_lag": lag_peak,
            "peak_lag_k6": lag_k6, "peak_lag_server_gauge": lag_server, "released_by": released_by, "consumer_events": events_by,
            "published": published, "holds_expired": expired_total,
            "expiry_release_latency_s": {"count": lat_count, "mean": lat_sum / lat_count if lat_count else None,
                                         "p50_le": hist_quantile(latency, 0.5), "p95_le": hist_quantile(latency, 0.95),
                                         "p99_le": hist_quantile(latency, 0.99), "buckets": {str(k): v for k, v in sorted(latency.items())}},
        },
        "sql_checks": checks,
        "pg_stat_database_delta": pg,
        "server_log": serverlog,
        "notes": notes,
        "samples": rows,
    }
    return finish(ctx, "seat-expiry", md, data, passed)


# ------------------------------------------------------------------------------------------------
# mixed, spike, breakpoint: fans on the full journey (lib/journey.js)

JOURNEY_OPS = ["enterQueue", "queueStatus", "concerts", "concert", "schedule", "holdSeats", "holdBestAvailable", "pay", "me"]
JOURNEY_OUTCOMES = ["paid", "held", "sold_out", "not_active", "failed"]


def rate_counts(s, name):
    """(failed, total) of a k6 Rate (passes = true samples = failures for *_failed rates)."""
    t = s.get(name, "passes", 0) or 0
    f = s.get(name, "fails", 0) or 0
    return int(t), int(t + f)


def journey_stats(s, tag=None):
    """Everything about the journeys of a run, or of the requests tagged `tag` (e.g. phase:burst)."""
    sub = (lambda name: f"{name}{{{tag}}}") if tag else (lambda name: name)
    failed, total = rate_counts(s, sub("journey_real_failed"))
    per_op = {}
    if not tag:
        for op in JOURNEY_OPS:
            n = s.get(f"http_reqs{{op:{op}}}", "count", 0) or 0
            if n:
                per_op[op] = {"requests": int(n), "latency_ms": lat(s, f"http_req_duration{{op:{op}}}"),
                              "real_failed_rate": s.get(f"journey_real_failed{{op:{op}}}", "value")}
    outcomes = {o: int(s.get(f"journey_outcomes{{outcome:{o}}}", "count", 0) or 0) for o in JOURNEY_OUTCOMES} if not tag else {}
    return {
        "requests": int(s.get(sub("http_reqs"), "count", 0) or 0),
        "latency_ms": lat(s, sub("http_req_duration")),
        "real_failed": failed,
        "real_failed_rate": (failed / total) if total else None,
        "journey_ms": lat(s, sub("journey_ms"), ("med", "p(90)", "p(95)", "p(99)", "max", "count")),
        "per_op": per_op,
        "outcomes": outcomes,
        "errors_by_code": errors_by(s, "code") if not tag else {},
        "me_mismatch": int(s.get("journey_me_mismatch", "count", 0) or 0),
        "pay_retries": int(s.get("journey_pay_retries", "count", 0) or 0),
        "queue_wait_ms": lat(s, "journey_queue_wait_ms", ("med", "p(95)", "max")),
        "dropped_iterations": int(s.get("dropped_iterations", "count", 0) or 0),
        "vus_peak": s.get("vus", "max"),
        "vus_max": s.get("vus_max", "max") or s.get("vus_max", "value"),
    }


def windows_of(s, seconds):
    """Per-window (by send time) requests/s, P95, P99 and failure rate."""
    out = []
    for name in s.metrics:
        m = re.match(r"^http_reqs\{window:w(\d+)\}$", name)
        if not m or not s.get(name, "count"):
            continue
        w = int(m.group(1))
        out.append({
            "window": w, "from_s": w * seconds,
            "requests": int(s.get(name, "count")),
            "per_s": s.get(name, "count") / seconds,
            "p95_ms": s.get(f"http_req_duration{{window:w{m.group(1)}}}", "p(95)"),
            "p99_ms": s.get(f"http_req_duration{{window:w{m.group(1)}}}", "p(99)"),
            "failed_rate": s.get(f"journey_real_failed{{window:w{m.group(1)}}}", "value"),
        })
    return sorted(out, key=lambda x: x["window"])


def windows_md(windows, seconds, marks=None):
    md = [f"Over time ({seconds} s windows by when the request was sent):\n",
          "| from (s) | requests/s | P95 | P99 | failed |" + (" |" if marks else ""),
          "|---|---|---|---|---|" + ("---|" if marks else "")]
    for w in windows:
        md.append(f"| {w['from_s']} | {w['per_s']:,.0f} | {ms(w['p95_ms'])} | {ms(w['p99_ms'])} | "
                  f"{fmt((w['failed_rate'] or 0) * 100, 2)} % |" + (f" {marks(w)} |" if marks else ""))
    md.append("")
    return md


def journey_results_md(js):
    md = ["| metric | value |", "|---|---|"]
    md.append(f"| GraphQL requests | {js['requests']:,} |")
    md.append(f"| request latency P50 / P90 / P95 / P99 / max | {ms(js['latency_ms'].get('med'))} / {ms(js['latency_ms'].get('p(90)'))} / "
              f"{ms(js['latency_ms'].get('p(95)'))} / {ms(js['latency_ms'].get('p(99)'))} / {ms(js['latency_ms'].get('max'))} |")
    md.append(f"| error rate (SEAT_UNAVAILABLE excluded) | {fmt((js['real_failed_rate'] or 0) * 100, 3)} % ({js['real_failed']:,} requests) |")
    jm = js["journey_ms"]
    md.append(f"| journeys paid: end-to-end P50 / P95 / P99 / max | {ms(jm.get('med'))} / {ms(jm.get('p(95)'))} / {ms(jm.get('p(99)'))} / "
              f"{ms(jm.get('max'))} ({fmt(jm.get('count'), 0)} journeys) |")
    if js["outcomes"]:
        md.append("| journeys by outcome | " + ", ".join(f"{k} {v:,}" for k, v in js["outcomes"].items() if v) + " |")
    md.append(f"| queue wait (enterQueue → ACTIVE seen) P50 / P95 | {ms(js['queue_wait_ms'].get('med'))} / {ms(js['queue_wait_ms'].get('p(95)'))} |")
    md.append("| errors by code (all, expected ones included) | " + (", ".join(f"`{k}` {v:,}" for k, v in js["errors_by_code"].items()) or "none") + " |")
    md.append(f"| fan's page (`me`) disagreeing with the receipt | {js['me_mismatch']:,} |")
    md.append(f"| payments retried with the same key after a lost answer | {js['pay_retries']:,} |")
    md.append(f"| arrivals k6 had no VU for (dropped_iterations) | {js['dropped_iterations']:,} |")
    md.append(f"| VUs in use, peak / allocated | {fmt(js['vus_peak'], 0)} / {fmt(js['vus_max'], 0)} |")
    md.append("")
    if js["per_op"]:
        md.append("By operation:\n")
        md.append("| operation | requests | P50 | P95 | P99 | max | error rate |\n|---|---|---|---|---|---|---|")
        for op, d in js["per_op"].items():
            l_ = d["latency_ms"]
            md.append(f"| `{op}` | {d['requests']:,} | {ms(l_.get('med'))} | {ms(l_.get('p(95)'))} | {ms(l_.get('p(99)'))} | "
                      f"{ms(l_.get('max'))} | {fmt((d['real_failed_rate'] or 0) * 100, 3)} % |")
        md.append("")
    return md


def server_side_of(prom):
    hold_hist = hist_buckets(prom, "hold_duration_seconds")
    pay_hist = hist_buckets(prom, "payment_duration_seconds")
    return {
        "hold_p95_s_le": hist_quantile(hold_hist, 0.95),
        "payment_p95_s_le": hist_quantile(pay_hist, 0.95),
        "db_pool_wait_p99_s_le": hist_quantile(hist_buckets(prom, "db_pool_wait_seconds"), 0.99),
        "db_retries": counter_by(prom, "db_retries_total", "reason"),
        "outbox_backlog_end": counter_sum(prom, "outbox_backlog"),
    }


def bottleneck_notes(ctx, res, js):
    """What the samples say about where the time went (data, not hopes)."""
    notes = []
    cores = ctx["machine"]["nproc"] or 1
    if res.get("machine_busy_avg") is not None:
        parts = sorted(((k, res.get(f"{k}_avg") or 0) for k in ("server_cpu", "pg_cpu", "k6_cpu", "redis_cpu")), key=lambda x: -x[1])
        names = {"server_cpu": "server", "pg_cpu": "PostgreSQL", "k6_cpu": "k6", "redis_cpu": "Redis"}
        notes.append(
            f"CPU: the machine ({cores} cores) was {fmt(res['machine_busy_avg'], 0)} % busy on average (peak {fmt(res['machine_busy_peak'], 0)} %): "
            + ", ".join(f"{names[k]} {v:.0f} %" for k, v in parts) + " of one core."
            + (" The cores were saturated: latency grew because requests waited for CPU, and the load generator's share is "
               "taken from the server." if (res.get("machine_busy_avg") or 0) >= 90 else "")
        )
    if res.get("pool_in_use_peak") is not None:
        size = float(ctx["server_env"].get("DATABASE_POOL_SIZE", "32"))
        notes.append(
            f"Database pool: {fmt(res.get('pool_in_use_avg'), 0)} of {size:.0f} connections in use on average, peak {fmt(res.get('pool_in_use_peak'), 0)}"
            + (" — saturated: requests queued for a connection." if (res.get("pool_in_use_peak") or 0) >= size else ".")
        )
    if js["errors_by_code"]:
        notes.append("Errors by code: " + ", ".join(f"{k} {v:,}" for k, v in js["errors_by_code"].items())
                     + " (SEAT_UNAVAILABLE is an expected answer; the rest are in the server log section and k6.log).")
    if js["dropped_iterations"]:
        notes.append(f"k6 dropped {js['dropped_iterations']:,} arrivals (no free VU): the offered rate was not fully sent.")
    n = interference_note(res)
    if n:
        notes.append(n)
    return notes


def journey_common(ctx):
    s = ctx["summary"]
    rows = ctx["samples"]
    checks = sql_checks(ctx["run_dir"])
    return {
        "s": s, "rows": rows, "checks": checks,
        "sql_ok": bool(checks) and all(ch["passed"] is not False for ch in checks),
        "pg": pg_stats(ctx["run_dir"]),
        "res": resources_of(rows, lambda r: (r.get("k6_cpu") or 0) > 5),
        "serverlog": server_log_summary(os.path.join(ctx["run_dir"], "server.log")),
        "server_side": server_side_of(ctx["prometheus"]),
    }


def journey_tail_md(ctx, c, notes, what):
    md = ["## Data consistency (SQL)\n"]
    md += sql_md(c["checks"]) if c["checks"] else ["(not run)\n"]
    ss = c["server_side"]
    md.append("## Server view\n")
    md.append("| metric | value |\n|---|---|")
    md.append(f"| hold transaction P95 (`hold_duration_seconds`) | {le_ms(ss['hold_p95_s_le'])} |")
    md.append(f"| payment P95 (`payment_duration_seconds`) | {le_ms(ss['payment_p95_s_le'])} |")
    md.append(f"| database pool wait P99 | {le_ms(ss['db_pool_wait_p99_s_le'])} |")
    md.append("| transactions retried (`db_retries_total`) | " + (", ".join(f"{k or 'all'} {v:,.0f}" for k, v in ss["db_retries"].items()) or "0") + " |")
    md.append(f"| PostgreSQL deadlocks / commits / rollbacks during the run | {fmt(c['pg'].get('deadlocks'), 0)} / {fmt(c['pg'].get('xact_commit'), 0)} / "
              f"{fmt(c['pg'].get('xact_rollback'), 0)} |")
    md.append("")
    md += log_md(c["serverlog"])
    md.append("## Resources (sampled every second)\n")
    md += resources_md(c["res"], "under load")
    md += timeline_md(c["rows"], 1, 40)
    md += conclusion_md(ctx, notes, what)
    return md


def journey_goals(ctx, c, js):
    return [
        ("data consistency: every SQL check as expected (nothing sold twice, balances = seeded points − payments = ledger)",
         f"{sum(1 for ch in c['checks'] if ch['passed'])} of {sum(1 for ch in c['checks'] if ch['passed'] is not None)} checks" if c["checks"] else "not run",
         c["sql_ok"]),
        ("every fan's page (`me`) agrees with their receipt (booking CONFIRMED, balance = balanceAfter)",
         f"{js['me_mismatch']:,} disagreed", js["me_mismatch"] == 0),
        ("deadlocks < 10 (pg_stat_database)", fmt(c["pg"].get("deadlocks"), 0),
         None if c["pg"].get("deadlocks") is None else c["pg"]["deadlocks"] < 10),
    ]


def report_mixed(ctx):
    c = journey_common(ctx)
    s, env = c["s"], ctx["k6_env"]
    rate = int(env.get("RATE", 0))
    duration = int(env.get("DURATION", 0))
    js = journey_stats(s)
    windows = windows_of(s, 10)
    # Every request of the journeys that arrived during the run, per second of the run (the last
    # journeys' requests are sent just after it): what the open model offered and k6 delivered.
    sent_in_run = js["requests"]
    sent_per_s = sent_in_run / duration if duration else None
    steady = [w for w in windows if 10 <= w["from_s"] and w["from_s"] + 10 <= duration]
    steady_per_s = (sum(w["requests"] for w in steady) / (10 * len(steady))) if steady else None
    plan = judged(s)
    order = ["journey_real_failed", "journey_ms", "http_req_duration"]
    plan.sort(key=lambda t: (order.index(t[0]) if t[0] in order else len(order), t[1]))
    goals = [(f"requests sent ≥ 95 % of the {rate:,} req/s offered", f"{fmt(sent_per_s, 1)} req/s over the {duration} s"
              + (f" (steady windows {fmt(steady_per_s, 0)})" if steady_per_s else ""),
              sent_per_s is not None and sent_per_s >= 0.95 * rate)]
    goals += journey_goals(ctx, c, js)
    passed = all(ok for _, _, ok in plan) and all(ok is not False for _, _, ok in goals) and ctx["k6_exit"] in (0, 99)
    notes = bottleneck_notes(ctx, c["res"], js)
    notes.insert(0, f"Every request of the journey counts toward the rate: {rate:,} req/s = {rate * 60 / 8:,.0f} journeys/min of "
                    f"8 requests when nothing goes wrong (a seat taken between the map and the hold adds a holdBestAvailable; a "
                    f"lost payment answer adds a retry). Requests sent by the journeys that arrived in the {duration} s: {sent_in_run:,}.")
    scale = float(env.get("LATENCY_SCALE", "1") or 1)
    labels = {
        ("journey_real_failed", "rate<0.001"): ("error rate < 0.1 % (plan, scenario 5; SEAT_UNAVAILABLE is an answer, not an error)",
                                                f"{fmt((js['real_failed_rate'] or 0) * 100, 3)} %"),
        ("journey_ms", f"p(95)<{round(5000 * scale)}"): ("end-to-end journey P95 < 5 s", ms(js["journey_ms"].get("p(95)"))),
        ("http_req_duration", f"p(95)<{round(500 * scale)}"): ("response time P95 < 500 ms", ms(js["latency_ms"].get("p(95)"))),
        ("http_req_duration", f"p(99)<{round(1000 * scale)}"): ("response time P99 < 1,000 ms", ms(js["latency_ms"].get("p(99)"))),
    }
    md = ["# Load test: sustained load, full journey (scenario 5)\n"]
    md += smoke_note(ctx)
    md.append(f"**Result: {'PASS' if passed else 'FAIL'}** — {rate:,} GraphQL req/s offered for {duration} s over every endpoint: "
              f"{fmt(sent_per_s, 0)} req/s sent, P95 {ms(js['latency_ms'].get('p(95)'))}, P99 {ms(js['latency_ms'].get('p(99)'))}, "
              f"error rate {fmt((js['real_failed_rate'] or 0) * 100, 3)} %, journey P95 {ms(js['journey_ms'].get('p(95)'))}, "
              f"{js['outcomes'].get('paid', 0):,} journeys paid; SQL consistency {'all as expected' if c['sql_ok'] else 'FAILED'}.\n")
    md += run_md(ctx,
        f"k6 `constant-arrival-rate` of journeys, {env.get('JOURNEY_RATE') or round(rate * 60 / 8)}/min (= {rate:,} req/s ÷ 8 requests a journey) "
        f"for {duration} s, open model (up to MAX_VUS in flight). A journey (k6-graphql/lib/journey.js): enterQueue → queueStatus "
        f"every {env.get('POLL_SECONDS', 1)} s until ACTIVE → concerts → concert (schedules) → schedule (seat map) → holdSeats "
        f"(odd journeys: 1–2 free seats from the map) or holdBestAvailable (even ones, and after SEAT_UNAVAILABLE) → pay "
        f"(idempotency key) → me. {env.get('USERS')} fans over {env.get('CONCERTS')} concerts.")
    md += thresholds_md(plan, labels, goals)
    md.append("## Results\n")
    md += journey_results_md(js)
    if windows:
        md += windows_md(windows, 10)
    md += journey_tail_md(ctx, c, notes, "k6 summary and log, samples, server log, /metrics, sql-checks.tsv, verify.json")
    data = {"_plan": plan, "goals": [{"goal": g, "measured": m_, "passed": ok_} for g, m_, ok_ in goals],
            "load_model": {"rate": rate, "duration_s": duration, "users": env.get("USERS"), "concerts": env.get("CONCERTS")},
            "results": dict(js, requests_sent_in_run=sent_in_run, requests_per_second=sent_per_s, steady_requests_per_second=steady_per_s),
            "windows": windows, "sql_checks": c["checks"], "pg_stat_database_delta": c["pg"], "server_metrics": c["server_side"],
            "resources": c["res"], "server_log": c["serverlog"], "notes": notes, "samples": c["rows"]}
    return finish(ctx, "mixed", md, data, passed)


def report_spike(ctx):
    c = journey_common(ctx)
    s, env = c["s"], ctx["k6_env"]
    rate = int(env.get("RATE", 0))
    factor = int(env.get("SPIKE_FACTOR", 10))
    base_s, burst_s, rec_s = (int(env.get(k, d)) for k, d in (("BASELINE_SECONDS", 60), ("BURST_SECONDS", 60), ("RECOVERY_SECONDS", 120)))
    burst_end = base_s + 2 + burst_s
    js = journey_stats(s)
    phases = {p: journey_stats(s, f"phase:{p}") for p in ("baseline", "burst", "recovery")}
    windows = windows_of(s, 5)
    scale = float(env.get("LATENCY_SCALE", "1") or 1)
    p95_limit = 500 * scale
    recovered_at = None
    for w in windows:
        if w["from_s"] >= burst_end and (w["p95_ms"] or 0) < p95_limit and not w["failed_rate"]:
            recovered_at = w["from_s"]
            break
    recovery_s = (recovered_at - burst_end) if recovered_at is not None else None
    plan = judged(s)
    phase_order = {"baseline": 0, "burst": 1, "recovery": 2}
    plan.sort(key=lambda t: (phase_order.get(re.sub(r".*phase:(\w+).*", r"\1", t[0]), 3), t[0], t[1]))
    goals = [(f"back to P95 < {p95_limit:g} ms with no failed request after the burst (first whole 5 s window after it)",
              f"{secs(recovery_s)} after the burst ended" if recovery_s is not None else "never, within the run",
              recovery_s is not None)]
    goals += journey_goals(ctx, c, js)
    passed = all(ok for _, _, ok in plan) and all(ok is not False for _, _, ok in goals) and ctx["k6_exit"] in (0, 99)
    notes = bottleneck_notes(ctx, resources_of(c["rows"], lambda r: True), js)
    b = phases["burst"]
    notes.insert(0, f"During the burst ({rate * factor:,} req/s offered, {b['requests']:,} requests sent: "
                    f"{b['requests'] / max(1, burst_s + 2):,.0f}/s) P95 was {ms(b['latency_ms'].get('p(95)'))} and "
                    f"{fmt((b['real_failed_rate'] or 0) * 100, 3)} % failed; the baseline P95 was {ms(phases['baseline']['latency_ms'].get('p(95)'))}.")
    labels = {}
    for p in ("baseline", "recovery"):
        labels[(f"http_req_duration{{phase:{p}}}", f"p(95)<{round(500 * scale)}")] = (f"{p}: response time P95 < 500 ms", ms(phases[p]["latency_ms"].get("p(95)")))
        labels[(f"http_req_duration{{phase:{p}}}", f"p(99)<{round(1000 * scale)}")] = (f"{p}: response time P99 < 1,000 ms", ms(phases[p]["latency_ms"].get("p(99)")))
        labels[(f"journey_real_failed{{phase:{p}}}", "rate<0.001")] = (f"{p}: error rate < 0.1 %", f"{fmt((phases[p]['real_failed_rate'] or 0) * 100, 3)} %")
    labels[("journey_real_failed{phase:burst}", "rate<0.005")] = ("burst: error rate < 0.5 % (success criteria)", f"{fmt((b['real_failed_rate'] or 0) * 100, 3)} %")
    md = ["# Load test: spike (10× burst)\n"]
    md += smoke_note(ctx)
    md.append(f"**Result: {'PASS' if passed else 'FAIL'}** — {rate:,} req/s, then {rate * factor:,} req/s for {burst_s} s, then {rate:,} again: "
              f"burst P95 {ms(b['latency_ms'].get('p(95)'))}, {fmt((b['real_failed_rate'] or 0) * 100, 3)} % failed; recovered "
              f"{secs(recovery_s) if recovery_s is not None else 'not at all'} after it; SQL consistency {'all as expected' if c['sql_ok'] else 'FAILED'}.\n")
    md += run_md(ctx,
        f"k6 `ramping-arrival-rate` of journeys (k6-graphql/lib/journey.js, 8 requests each): {rate:,} req/s for {base_s} s, "
        f"{rate * factor:,} req/s within 2 s and for {burst_s} s, back to {rate:,} within 2 s and for {rec_s} s. Requests are "
        f"tagged by the phase in which they were sent. {env.get('USERS')} fans over {env.get('CONCERTS')} concerts.")
    md += thresholds_md(plan, labels, goals)
    md.append("## Results\n")
    md.append("| phase | requests | sent/s | P50 | P95 | P99 | max | error rate | journey P95 |\n|---|---|---|---|---|---|---|---|---|")
    lengths = {"baseline": base_s, "burst": burst_s + 2, "recovery": rec_s + 2}
    for p, d in phases.items():
        l_ = d["latency_ms"]
        md.append(f"| {p} | {d['requests']:,} | {d['requests'] / max(1, lengths[p]):,.0f} | {ms(l_.get('med'))} | {ms(l_.get('p(95)'))} | "
                  f"{ms(l_.get('p(99)'))} | {ms(l_.get('max'))} | {fmt((d['real_failed_rate'] or 0) * 100, 3)} % | {ms(d['journey_ms'].get('p(95)'))} |")
    md.append("")
    md += journey_results_md(js)
    if windows:
        md += windows_md(windows, 5, lambda w: "burst" if base_s <= w["from_s"] < burst_end else
                         ("recovered" if recovered_at is not None and w["from_s"] == recovered_at else ""))
    md += journey_tail_md(ctx, c, notes, "k6 summary and log, samples, server log, /metrics, sql-checks.tsv, verify.json")
    data = {"_plan": plan, "goals": [{"goal": g, "measured": m_, "passed": ok_} for g, m_, ok_ in goals],
            "load_model": {"rate": rate, "factor": factor, "baseline_s": base_s, "burst_s": burst_s, "recovery_s": rec_s},
            "results": dict(js, phases=phases, recovery_seconds=recovery_s), "windows": windows, "sql_checks": c["checks"],
            "pg_stat_database_delta": c["pg"], "server_metrics": c["server_side"], "resources": c["res"],
            "server_log": c["serverlog"], "notes": notes, "samples": c["rows"]}
    return finish(ctx, "spike", md, data, passed)


def report_breakpoint(ctx):
    c = journey_common(ctx)
    s, env = c["s"], ctx["k6_env"]
    start, step, top, step_s = (int(env.get(k, d)) for k, d in (("START_RATE", 50), ("STEP_RATE", 50), ("MAX_RATE", 1500), ("STEP_SECONDS", 30)))
    rates = []
    r = start
    while r < top + step:
        rates.append(min(r, top))
        r += step
    js = journey_stats(s)
    thresholds = s.thresholds()
    steps = []
    for i, rate in enumerate(rates):
        tag = f"s{i:02d}"
        n = s.get(f"http_reqs{{step:{tag}}}", "count")
        if not n:
            continue
        failed = [f"{name.split('{')[0]} {expr}" for name, expr, ok in thresholds if name.endswith(f"{{step:{tag}}}") and not ok]
        steps.append({
            "step": i, "target_rps": rate, "requests": int(n), "sent_per_s": n / step_s,
            "p95_ms": s.get(f"http_req_duration{{step:{tag}}}", "p(95)"), "p99_ms": s.get(f"http_req_duration{{step:{tag}}}", "p(99)"),
            "failed_rate": s.get(f"journey_real_failed{{step:{tag}}}", "value"),
            "journey_p95_ms": s.get(f"journey_ms{{step:{tag}}}", "p(95)"), "thresholds_failed": failed,
        })
    broke = next((x for x in steps if x["thresholds_failed"]), None)
    good = [x for x in steps if not x["thresholds_failed"] and (broke is None or x["step"] < broke["step"])]
    last_good = good[-1] if good else None
    # The last step that ran its full length and passed is the sustained rate (a partial last step
    # is cut short by the abort or by the end).
    target_at_end = s.get("breakpoint_target_rps", "value")
    max_tps = last_good["sent_per_s"] if last_good else None
    smoke = is_smoke(ctx)
    checks_goal = journey_goals(ctx, c, js)
    goals = [("max throughput > 500 TPS (success criteria): requests/s sustained by the last step that passed",
              f"{fmt(max_tps, 0)} req/s" + (f" at {last_good['target_rps']:,} offered" if last_good else ""),
              None if smoke else (max_tps is not None and max_tps > 500))]
    goals += checks_goal
    passed = all(ok is not False for _, _, ok in goals) and ctx["k6_exit"] in (0, 99)
    notes = bottleneck_notes(ctx, resources_of(c["rows"], lambda r_: True), js)
    if broke:
        notes.insert(0, f"It broke at {broke['target_rps']:,} req/s offered (step {broke['step'] + 1}): "
                        f"{', '.join(broke['thresholds_failed'])} (P95 {ms(broke['p95_ms'])}, error rate {fmt((broke['failed_rate'] or 0) * 100, 2)} %); "
                        f"k6 stopped the test when the threshold failed (abortOnFail), with {fmt(target_at_end, 0)} req/s offered at that moment. "
                        + (f"The last step that held: {last_good['target_rps']:,} req/s offered, {last_good['sent_per_s']:,.0f} sent."
                           if last_good else "Not even the first step held: start lower (--rate)."))
    else:
        notes.insert(0, f"It did not break: every step up to {rates[-1]:,} req/s passed (raise --max).")
    md = ["# Load test: breakpoint (step ramp until a threshold breaks)\n"]
    md += smoke_note(ctx)
    md.append(f"**Result: {'PASS' if passed else 'FAIL'}** — "
              + (f"broke at **{broke['target_rps']:,} req/s** offered ({', '.join(broke['thresholds_failed'])}); "
                 + (f"the last step that held was {last_good['target_rps']:,} req/s ({fmt(max_tps, 0)} req/s sent)" if last_good
                    else "no step held")
                 if broke else f"did not break up to {rates[-1]:,} req/s ({fmt(max_tps, 0)} req/s sent in the last step)")
              + f"; SQL consistency {'all as expected' if c['sql_ok'] else 'FAILED'}.\n")
    md += run_md(ctx,
        f"k6 `ramping-arrival-rate` of journeys (k6-graphql/lib/journey.js, 8 requests each: the sustained-load mix): from {start:,} "
        f"req/s, +{step:,} every {step_s} s (each step reached in 1 s), up to {top:,}. Each step's requests (tagged by send time) "
        f"are judged on their own, with abortOnFail: P95 < 500 ms and error rate < 1 %.")
    md.append("## Thresholds and goals\n")
    md.append("| criterion | measured | result |\n|---|---|---|")
    md.append(f"| breaking point: first step with P95 ≥ 500 ms or ≥ 1 % errors | "
              + (f"{broke['target_rps']:,} req/s offered" if broke else f"none up to {rates[-1]:,} req/s") + " | info |")
    for label, measured, ok in goals:
        md.append(f"| {label} | {measured} | {'info' if ok is None else pass_fail(ok)} |")
    md.append("")
    md.append("## Results\n")
    md.append("| step | offered req/s | sent req/s | P95 | P99 | error rate | journey P95 | thresholds |\n|---|---|---|---|---|---|---|---|")
    for x in steps:
        md.append(f"| {x['step'] + 1} | {x['target_rps']:,} | {x['sent_per_s']:,.0f} | {ms(x['p95_ms'])} | {ms(x['p99_ms'])} | "
                  f"{fmt((x['failed_rate'] or 0) * 100, 2)} % | {ms(x['journey_p95_ms'])} | "
                  + ("**" + ", ".join(x["thresholds_failed"]) + "**" if x["thresholds_failed"] else "ok") + " |")
    md.append("")
    md += journey_results_md(js)
    md += journey_tail_md(ctx, c, notes, "k6 summary and log, samples, server log, /metrics, sql-checks.tsv, verify.json")
    data = {"_plan": [], "goals": [{"goal": g, "measured": m_, "passed": ok_} for g, m_, ok_ in goals],
            "load_model": {"start_rps": start, "step_rps": step, "max_rps": top, "step_seconds": step_s},
            "results": dict(js, steps=steps, broke_at_rps=broke["target_rps"] if broke else None,
                            last_good_rps=last_good["target_rps"] if last_good else None, max_sustained_rps=max_tps,
                            target_rps_at_end=target_at_end),
            "sql_checks": c["checks"], "pg_stat_database_delta": c["pg"], "server_metrics": c["server_side"],
            "resources": c["res"], "server_log": c["serverlog"], "notes": notes, "samples": c["rows"]}
    return finish(ctx, "breakpoint", md, data, passed)


# ------------------------------------------------------------------------------------------------
# subscriptions


def report_subscriptions(ctx):
    s = ctx["summary"]
    env = ctx["k6_env"]
    server_env = ctx["server_env"]
    rows = ctx["samples"]
    n = int(env.get("SUBSCRIBERS", 0))
    per_vu = int(env.get("FANS_PER_VU", 50))
    c = lambda name: int(s.get(name, "count", 0) or 0)  # noqa: E731
    connect = lat(s, "sub_connect_ms")
    ack = lat(s, "sub_ack_ms")
    first = lat(s, "sub_first_update_ms")
    gap = lat(s, "sub_update_gap_ms", ("med", "p(95)", "p(99)", "max"))
    push = lat(s, "sub_active_push_ms")
    wait = lat(s, "sub_wait_seconds", ("med", "p(95)", "max"))
    updates = c("sub_updates")
    duration_s = run_seconds(ctx)
    enter_failed = s.get("graphql_failed{op:enterQueue}", "value")
    dropped = {k: c(f"sub_dropped{{stage:{k}}}") for k in ("connecting", "waiting")}
    errs = {k: c(f"sub_errors{{kind:{k}}}") for k in ("socket", "subscription", "protocol")}
    subs_peak = column_peak(rows, "queue_subscribers")
    waiting_peak = column_peak(rows, "waiting")
    rss_peak = column_peak(rows, "server_rss_kb")
    rss_start = rows[0].get("server_rss_kb") if rows else None
    checks = sql_checks(ctx["run_dir"])
    sql_ok = not checks or all(ch["passed"] is not False for ch in checks)
    res = resources_of(rows)
    serverlog = server_log_summary(os.path.join(ctx["run_dir"], "server.log"))
    plan = judged(s)
    order = ["sub_dropped", "sub_errors", "sub_not_activated", "sub_ack_ms", "sub_first_update_ms", "sub_active_push_ms"]
    plan.sort(key=lambda t: order.index(t[0]) if t[0] in order else len(order))
    goals = [("every subscriber subscribed", f"{c('sub_subscribed'):,} of {n:,}", c("sub_subscribed") == n),
             ("positions only ever went down", f"{c('sub_position_regressions'):,} went up", c("sub_position_regressions") == 0),
             ("data consistency (SQL)", "as expected" if sql_ok else "FAILED", sql_ok)]
    passed = all(ok for _, _, ok in plan) and all(ok is not False for _, _, ok in goals) and ctx["k6_exit"] in (0, 99)
    scale = float(env.get("LATENCY_SCALE", "1") or 1)
    labels = {
        ("sub_dropped", "count<1"): ("no connection dropped before ACTIVE", f"{c('sub_dropped'):,}"),
        ("sub_errors", "count<1"): ("no socket or subscription error", f"{c('sub_errors'):,}"),
        ("sub_not_activated", "count<1"): ("every subscriber pushed ACTIVE", f"{c('sub_not_activated'):,} not"),
        ("sub_ack_ms", f"p(95)<{round(1000 * scale)}"): ("connect + authenticate (connection_ack) P95 < 1 s", ms(ack.get("p(95)"))),
        ("sub_first_update_ms", f"p(95)<{round(1000 * scale)}"): ("first update P95 < 1 s", ms(first.get("p(95)"))),
        ("sub_active_push_ms", f"p(95)<{round(1000 * scale)}"): ("ACTIVE pushed within 1 s of admission, P95", ms(push.get("p(95)"))),
        ("graphql_failed{op:enterQueue}", "rate<0.005"): ("enterQueue error rate < 0.5 %", f"{fmt((enter_failed or 0) * 100, 3)} %"),
    }
    notes = []
    tick = server_env.get("QUEUE_TICK_MS", "500")
    notes.append(
        f"Updates come with admission ticks (every {tick} ms): each tick is one Redis message per concert, fanned out in the server to "
        f"every subscriber, who computes its own position (no Redis read per subscriber). Median gap between a subscriber's updates "
        f"{ms(gap.get('med'))}: one per tick while waiting."
    )
    if rss_peak and rss_start:
        notes.append(f"Server memory: {rss_start / 1024:,.0f} MB at the start, {rss_peak / 1024:,.0f} MB at the peak with "
                     f"{fmt(subs_peak, 0)} subscribers (≈ {(rss_peak - rss_start) / max(1, subs_peak or 1):,.0f} kB each, websocket buffers included).")
    n_ = interference_note(res)
    if n_:
        notes.append(n_)
    md = ["# Load test: queue subscriptions over websockets\n"]
    md += smoke_note(ctx)
    md.append(f"**Result: {'PASS' if passed else 'FAIL'}** — {n:,} subscribers to `queueStatus` while the queue admitted "
              f"{server_env.get('QUEUE_ADMIT_PER_SECOND')}/s: {c('sub_activated'):,} pushed ACTIVE, {c('sub_dropped'):,} dropped; "
              f"connect+ack P95 {ms(ack.get('p(95)'))}, first update P95 {ms(first.get('p(95)'))}, ACTIVE push P95 {ms(push.get('p(95)'))}, "
              f"{updates:,} updates ({fmt(updates / duration_s if duration_s else None, 0)}/s).\n")
    md += run_md(ctx,
        f"{n:,} fans, {per_vu} per k6 VU (k6/experimental/websockets, event loop), arriving evenly over {env.get('CONNECT_SECONDS')} s: "
        f"enterQueue over HTTP, then a websocket (graphql-transport-ws) with the JWT in `connection_init`, subscribe `queueStatus(token)`; "
        f"on ACTIVE the fan completes and closes. The admission rate is set so the crowd is in after about "
        f"{max(1, round(n / float(server_env.get('QUEUE_ADMIT_PER_SECOND', '1') or 1)))} s: a line builds up and drains.")
    md += thresholds_md(plan, labels, goals)
    md.append("## Results\n")
    md.append("| metric | value |\n|---|---|")
    md.append(f"| subscribers subscribed / pushed ACTIVE / EXPIRED / not ACTIVE by the deadline | {c('sub_subscribed'):,} / {c('sub_activated'):,} / "
              f"{c('sub_expired'):,} / {c('sub_not_activated'):,} |")
    md.append(f"| websocket open (upgrade) P50 / P95 / P99 / max | {ms(connect.get('med'))} / {ms(connect.get('p(95)'))} / {ms(connect.get('p(99)'))} / {ms(connect.get('max'))} |")
    md.append(f"| open → connection_ack P50 / P95 / P99 / max | {ms(ack.get('med'))} / {ms(ack.get('p(95)'))} / {ms(ack.get('p(99)'))} / {ms(ack.get('max'))} |")
    md.append(f"| subscribe → first update P50 / P95 / P99 / max | {ms(first.get('med'))} / {ms(first.get('p(95)'))} / {ms(first.get('p(99)'))} / {ms(first.get('max'))} |")
    md.append(f"| admission → ACTIVE received P50 / P95 / P99 / max | {ms(push.get('med'))} / {ms(push.get('p(95)'))} / {ms(push.get('p(99)'))} / {ms(push.get('max'))} |")
    md.append(f"| gap between a subscriber's updates P50 / P95 / P99 / max | {ms(gap.get('med'))} / {ms(gap.get('p(95)'))} / {ms(gap.get('p(99)'))} / {ms(gap.get('max'))} |")
    md.append(f"| updates received | {updates:,} ({updates / max(1, n):,.1f} per subscriber; {fmt(updates / duration_s if duration_s else None, 0)}/s over {secs(duration_s)}) |")
    md.append(f"| wait in line (entered → ACTIVE) P50 / P95 / max | {secs(wait.get('med'))} / {secs(wait.get('p(95)'))} / {secs(wait.get('max'))} |")
    md.append(f"| dropped (connecting / waiting) | {dropped['connecting']:,} / {dropped['waiting']:,} |")
    md.append(f"| errors (socket / subscription / protocol) | {errs['socket']:,} / {errs['subscription']:,} / {errs['protocol']:,} |")
    md.append(f"| enterQueue P95 / error rate | {ms(s.get('http_req_duration{op:enterQueue}', 'p(95)'))} / {fmt((enter_failed or 0) * 100, 3)} % |")
    md.append(f"| peak subscribers on the server (`queue_subscribers`) / peak waiting in line | {fmt(subs_peak, 0)} / {fmt(waiting_peak, 0)} |")
    md.append("")
    md.append("## Data consistency (SQL)\n")
    md += sql_md(checks) if checks else ["(not run)\n"]
    md.append("## Server view\n")
    md += log_md(serverlog)
    md.append("## Resources (sampled every second)\n")
    md += resources_md(res, "over the run")
    if rows:
        md.append("| t (s) | waiting | ACTIVE | subscribers | server CPU % | server RSS MB | k6 CPU % | Redis CPU % |\n|---|---|---|---|---|---|---|---|")
        step = max(1, math.ceil(len(rows) / 40))
        for r in rows[::step]:
            md.append(f"| {r['t']:.0f} | {fmt(r.get('waiting'), 0)} | {fmt(r.get('active'), 0)} | {fmt(r.get('queue_subscribers'), 0)} | "
                      f"{fmt(r.get('server_cpu'), 0)} | {fmt((r.get('server_rss_kb') or 0) / 1024, 0)} | {fmt(r.get('k6_cpu'), 0)} | {fmt(r.get('redis_cpu'), 0)} |")
        md.append("")
    md += conclusion_md(ctx, notes, "k6 summary and log, samples, server log, /metrics, verify.json")
    data = {"_plan": plan, "goals": [{"goal": g, "measured": m_, "passed": ok_} for g, m_, ok_ in goals],
            "load_model": {"subscribers": n, "fans_per_vu": per_vu, "connect_seconds": env.get("CONNECT_SECONDS"),
                           "admit_per_second": server_env.get("QUEUE_ADMIT_PER_SECOND")},
            "results": {"subscribed": c("sub_subscribed"), "activated": c("sub_activated"), "expired": c("sub_expired"),
                        "not_activated": c("sub_not_activated"), "connect_ms": connect, "ack_ms": ack, "first_update_ms": first,
                        "active_push_ms": push, "update_gap_ms": gap, "updates": updates, "wait_seconds": wait,
                        "dropped": dropped, "errors": errs, "position_regressions": c("sub_position_regressions"),
                        "peak_subscribers": subs_peak, "peak_waiting": waiting_peak, "server_rss_peak_kb": rss_peak},
            "sql_checks": checks, "resources": res, "server_log": serverlog, "notes": notes, "samples": rows}
    return finish(ctx, "subscriptions", md, data, passed)


# ------------------------------------------------------------------------------------------------
# ceiling


def pgbench_result(path):
    text = read(path, "") or ""
    tps = re.search(r"^tps = ([0-9.]+)", text, re.M)
    latency = re.search(r"^latency average = ([0-9.]+) ms", text, re.M)
    done = re.search(r"number of transactions actually processed: (\d+)", text)
    failed = re.search(r"number of failed transactions: (\d+)", text)
    return {"tps": float(tps.group(1)) if tps else None, "latency_ms": float(latency.group(1)) if latency else None,
            "transactions": int(done.group(1)) if done else None, "failed": int(failed.group(1)) if failed else None}


def committed_results(root):
    """Throughput of the scenarios' committed reports (docs/results/*.json), each from its own run."""
    out = []

    def load(name):
        try:
            with open(os.path.join(root, "docs", "results", name + ".json"), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def add(name, what, value, vs, unit, d):
        if value:
            out.append({"scenario": name, "what": what, "value": value, "vs": vs, "unit": unit,
                        "date": d.get("started"), "commit": (d.get("source") or {}).get("commit")})

    d = load("queue-wave")
    if d:
        r = d.get("results", {})
        req = sum((r.get("requests") or {}).values())
        add("queue-wave", "queue requests/s (enter + polls over the run)", req / r["test_duration_seconds"] if r.get("test_duration_seconds") else None,
            "healthz", "req/s", d)
    d = load("seat-stampede")
    if d:
        r = d.get("results", {})
        req = sum(v for v in (r.get("requests") or {}).values() if isinstance(v, (int, float))) if isinstance(r.get("requests"), dict) else r.get("requests")
        dur = run_seconds(d)
        add("seat-stampede", "GraphQL requests/s over the run (queue, catalogue, holds)", req / dur if req and dur else None,
            "typename", "req/s", d)
    d = load("payments")
    if d:
        r = d.get("results", {})
        add("payments", "payments/s", r.get("payments_per_second"), "pgbench_commit", "tx/s", d)
        prep = d.get("prepare") or {}
        add("payments", "holds/s made through the API (prepare phase)", prep.get("holds_per_second"), "api_holds", "holds/s", d)
    d = load("mixed")
    if d and not (d.get("load_model") or {}).get("smoke"):
        r = d.get("results", {})
        add("mixed", "GraphQL requests/s, full journey", r.get("requests_per_second"), "typename", "req/s", d)
    d = load("breakpoint")
    if d:
        r = d.get("results", {})
        add("breakpoint", "req/s sustained by the last step that held", r.get("max_sustained_rps"), "typename", "req/s", d)
    return out


def report_ceiling(ctx):
    s = ctx["summary"]
    env = ctx["k6_env"]
    rows = ctx["samples"]
    secs_each = int(env.get("SECONDS_EACH", 15))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parts = {}
    for p in ("healthz", "typename", "holds"):
        n = s.get(f"http_reqs{{part:{p}}}", "count") or 0
        parts[p] = {"requests": int(n), "per_s": n / secs_each if secs_each else None, "latency_ms": lat(s, f"http_req_duration{{part:{p}}}")}
    holds_ok = int(s.get("ceiling_holds_ok", "count", 0) or 0)
    parts["holds"]["ok_per_s"] = holds_ok / secs_each if secs_each else None
    failed = {"healthz": s.get("http_req_failed{part:healthz}", "value"), "typename": s.get("graphql_failed{part:typename}", "value"),
              "holds": s.get("graphql_failed{part:holds}", "value")}
    pg = {v: pgbench_result(os.path.join(ctx["run_dir"], f"pgbench-{v}.log")) for v in ("rollback", "commit")}
    ceilings = {"healthz": parts["healthz"]["per_s"], "typename": parts["typename"]["per_s"], "api_holds": parts["holds"]["ok_per_s"],
                "pgbench_rollback": pg["rollback"]["tps"], "pgbench_commit": pg["commit"]["tps"]}

    def ratio(a, b):
        return a / b if a and b else None

    ratios = [
        ("GraphQL `{ __typename }` req/s ÷ /healthz req/s", ratio(ceilings["typename"], ceilings["healthz"]), "what the GraphQL engine and its extensions cost on top of HTTP"),
        ("API holds/s ÷ pgbench holds/s (commit + give back)", ratio(ceilings["api_holds"], ceilings["pgbench_commit"]), "HTTP, GraphQL, JWT, queue check in Redis, pool, seat-map invalidation around the same SQL"),
        ("API holds/s ÷ pgbench holds/s (rolled back)", ratio(ceilings["api_holds"], ceilings["pgbench_rollback"]), "the same against the no-commit upper bound"),
    ]
    # A smoke run's ceilings (debug build, a few VUs) say nothing about the scenarios' release runs.
    committed = [] if is_smoke(ctx) else committed_results(root)
    for c_ in committed:
        c_["ratio"] = ratio(c_["value"], ceilings.get(c_["vs"]))
    checks = sql_checks(ctx["run_dir"])
    sql_ok = not checks or all(ch["passed"] is not False for ch in checks)
    ok_parts = all((failed[p] or 0) < 0.01 for p in failed) and all(pg[v]["tps"] for v in pg)
    goals = [("every part ran (< 1 % failed requests, pgbench finished)", ", ".join(f"{p} {fmt((failed[p] or 0) * 100, 2)} %" for p in failed), ok_parts),
             ("data consistency (SQL) after pgbench and the API holds", "as expected" if sql_ok else "FAILED", sql_ok)]
    passed = all(ok is not False for _, _, ok in goals) and ctx["k6_exit"] in (0, 99)
    res = resources_of(rows)
    names = {"healthz": "k6 → GET /healthz", "typename": "k6 → POST /graphql `{ __typename }`", "holds": "k6 → holdBestAvailable (API)"}
    md = ["# Ceilings of this machine\n"]
    md += smoke_note(ctx)
    md.append(f"**Result: {'PASS' if passed else 'FAIL'}** — /healthz {fmt(ceilings['healthz'], 0)} req/s, GraphQL `{{ __typename }}` "
              f"{fmt(ceilings['typename'], 0)} req/s, API holds {fmt(ceilings['api_holds'], 0)}/s; pgbench on the raw hold transaction "
              f"{fmt(ceilings['pgbench_commit'], 0)} tps committed ({fmt(ceilings['pgbench_rollback'], 0)} tps rolled back).\n")
    md += run_md(ctx,
        f"Each part {secs_each} s, one after the other, closed model (VUs loop without pause: k6 and the server share the cores, "
        f"as in every scenario): /healthz and `{{ __typename }}` with {env.get('VUS')} VUs, API holds with {env.get('HOLD_VUS')} VUs "
        f"(each hold a fresh fan × schedule pair, so nothing is undone). Before them, pgbench with {env.get('PGBENCH_CLIENTS', '?')} clients "
        f"for {env.get('SECONDS_EACH')} s per variant: k6-graphql/tools/hold.pgbench.sql (the SQL of booking/mod.rs's hold).")
    md.append("## Thresholds and goals\n")
    md.append("| criterion | measured | result |\n|---|---|---|")
    for label, measured, ok in goals:
        md.append(f"| {label} | {measured} | {pass_fail(ok)} |")
    md.append("")
    md.append("## Results\n")
    md.append("| ceiling | throughput | latency P50 / P95 / P99 |\n|---|---|---|")
    for p in ("healthz", "typename", "holds"):
        l_ = parts[p]["latency_ms"]
        md.append(f"| {names[p]} | **{fmt(parts[p]['ok_per_s'] if p == 'holds' else parts[p]['per_s'], 0)}**/s | "
                  f"{ms(l_.get('med'))} / {ms(l_.get('p(95)'))} / {ms(l_.get('p(99)'))} |")
    for v, label in (("rollback", "pgbench: hold transaction, rolled back (upper bound)"), ("commit", "pgbench: hold committed, then given back (lower bound)")):
        md.append(f"| {label} | **{fmt(pg[v]['tps'], 0)}** tps | average {ms(pg[v]['latency_ms'])} ({fmt(pg[v]['transactions'], 0)} transactions, {fmt(pg[v]['failed'], 0)} failed) |")
    md.append("")
    md.append("Ratios measured in this run:\n")
    md.append("| ratio | value | what the gap is |\n|---|---|---|")
    for label, value, why in ratios:
        md.append(f"| {label} | {fmt((value or 0) * 100, 0)} % | {why} |")
    md.append("")
    if committed:
        md.append("The scenarios' committed results (docs/results/, each from its own run on this machine, under its own load) as a share "
                  "of this run's ceilings:\n")
        md.append("| scenario | measured | ceiling | share | that run |\n|---|---|---|---|---|")
        for c_ in committed:
            md.append(f"| {c_['scenario']}: {c_['what']} | {fmt(c_['value'], 0)} {c_['unit']} | {c_['vs']} {fmt(ceilings.get(c_['vs']), 0)} | "
                      f"{fmt((c_['ratio'] or 0) * 100, 0)} % | {c_['date']} `{c_['commit']}` |")
        md.append("")
    md.append("## Data consistency (SQL)\n")
    md += sql_md(checks) if checks else ["(not run)\n"]
    md.append("## Resources (sampled every second)\n")
    md += resources_md(res, "over the k6 parts")
    md += timeline_md(rows, 1, 40)
    notes = [
        "The /healthz ceiling is what k6 and axum manage together on these cores; every scenario shares the same cores with k6, "
        "so no scenario can exceed it, and a GraphQL request doing real work is far below it.",
        "pgbench's two variants bracket the database's own limit for holds: rolled back it skips the commit's WAL flush; committed "
        "it also pays a second transaction to give the seat back. The API's hold does the same SQL plus a schedule lookup, a Redis "
        "queue check and the seat-map invalidation.",
    ]
    n_ = interference_note(res)
    if n_:
        notes.append(n_)
    md += conclusion_md(ctx, notes, "k6 summary and log, pgbench scripts and logs, samples, server log")
    data = {"_plan": [], "goals": [{"goal": g, "measured": m_, "passed": ok_} for g, m_, ok_ in goals],
            "load_model": {"seconds_each": secs_each, "vus": env.get("VUS"), "hold_vus": env.get("HOLD_VUS")},
            "results": {"ceilings": ceilings, "parts": parts, "failed": failed, "pgbench": pg,
                        "ratios": [{"ratio": a, "value": b} for a, b, _ in ratios], "committed_results": committed},
            "sql_checks": checks, "resources": res, "notes": notes, "samples": rows}
    return finish(ctx, "ceiling", md, data, passed)


# ------------------------------------------------------------------------------------------------
# smoke: the summary of `scripts/load smoke` (no k6 summary of its own)


def report_smoke(run_dir, out, command):
    runs = []
    for line in (read(os.path.join(run_dir, "runs.tsv"), "") or "").splitlines():
        cells = line.split("\t")
        if len(cells) < 4:
            continue
        name, rc, seconds, args = cells[:4]
        data = None
        try:
            data = json.loads(read(os.path.join(run_dir, name + ".json"), "") or "null")
        except ValueError:
            pass
        md_text = read(os.path.join(run_dir, name + ".md"), "") or ""
        headline = re.search(r"^\*\*Result: .*$", md_text, re.M)
        runs.append({"scenario": name, "exit": int(rc), "seconds": int(seconds), "args": args,
                     "passed": int(rc) == 0, "headline": headline.group(0) if headline else "(no report: see the log)",
                     "verify": (data or {}).get("verify", {}).get("status") if data else None})
    passed = bool(runs) and all(r["passed"] for r in runs)
    md = ["# Smoke run of every load scenario\n",
          f"**Result: {'PASS' if passed else 'FAIL'}** — {sum(r['passed'] for r in runs)} of {len(runs)} scenarios passed in "
          f"{sum(r['seconds'] for r in runs)} s.\n",
          f"`{command}`: each scenario at a tiny size, latency limits × 10, SQL checks and `concert-reservation verify` after each.\n",
          "| scenario | arguments | exit | seconds | verify | result |", "|---|---|---|---|---|---|"]
    for r in runs:
        md.append(f"| {r['scenario']} | `{r['args']}` | {r['exit']} | {r['seconds']} | {r['verify'] or 'n/a'} | {r['headline'].replace('|', '/')} |")
    md.append("")
    md.append(f"Reports and logs: `{run_dir}/<scenario>.{{md,json,log}}`.\n")
    with open(out + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")
    with open(out + ".json", "w", encoding="utf-8") as f:
        json.dump({"scenario": "smoke", "passed": passed, "command": command, "runs": runs}, f, indent=2)
        f.write("\n")
    return 0 if passed else 1


REPORTS = {
    "queue-wave": report_queue_wave, "seat-stampede": report_seat_stampede, "payments": report_payments,
    "seat-expiry": report_seat_expiry, "mixed": report_mixed, "spike": report_spike, "breakpoint": report_breakpoint,
    "subscriptions": report_subscriptions, "ceiling": report_ceiling,
}


def with_verify(md, data, passed, v):
    """Puts the verify section after the SQL checks (or at the end) and fails the report when verify failed."""
    section = "\n".join(verify_md(v)) + "\n"
    at = md.find("\n## Data consistency")
    nxt = md.find("\n## ", at + 1) if at >= 0 else -1
    md = md[:nxt + 1] + section + md[nxt + 1:] if nxt >= 0 else md.rstrip("\n") + "\n\n" + section
    data["verify"] = {"status": v["status"], "passed": v["passed"], "result": v["data"]}
    if v["passed"] is False:
        passed = False
        data["passed"] = False
        md = md.replace("**Result: PASS**", "**Result: FAIL** (concert-reservation verify failed)", 1)
    return md, data, passed


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=sorted(REPORTS) + ["smoke"])
    p.add_argument("--run-dir", required=True)
    p.add_argument("--out", required=True, help="path without extension")
    p.add_argument("--command", required=True)
    p.add_argument("--k6-exit", type=int, default=0)
    p.add_argument("--started", default="")
    p.add_argument("--finished", default="")
    p.add_argument("--k6-version", default="")
    a = p.parse_args()
    if a.scenario == "smoke":
        return report_smoke(a.run_dir, a.out, a.command)

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
    global SCALE
    SCALE = float(k6_env.get("LATENCY_SCALE", "1") or 1)
    md, data, passed = REPORTS[a.scenario](ctx)
    md, data, passed = with_verify(md, data, passed, verify_info(run_dir))
    with open(a.out + ".md", "w", encoding="utf-8") as f:
        f.write(md)
    with open(a.out + ".json", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
