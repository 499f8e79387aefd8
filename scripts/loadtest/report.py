"""A run's report: the context every scenario reads (k6 summary, samples, /metrics, data checks,
verify), the parts every report shares, and rendering to <out>.md (jinja2), <out>.json and
charts under <out>/."""

import json
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import jinja2
import psutil

from loadtest import charts
from loadtest.checks import verify_result
from loadtest.fmt import num, pass_fail
from loadtest.k6 import env_of_command
from loadtest.metrics import Summary, parse_prometheus
from loadtest.util import DEV_SECRET, PROJECT_ROOT, read_json, read_text, read_tsv, rel, write_json


@dataclass
class Table:
    headers: list
    rows: list
    caption: str = ""


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)


@dataclass
class Report:
    """What a scenario's report says: numbers, criteria and tables, no prose of why."""

    title: str
    headline: str
    load_model: str
    data: dict
    plan: list = field(default_factory=list)      # judged k6 thresholds [(metric, expr, ok)]
    labels: dict = field(default_factory=dict)    # (metric, expr) -> (label, measured)
    goals: list = field(default_factory=list)     # [(label, measured, ok or None)]
    sections: list = field(default_factory=list)
    run_rows: list = field(default_factory=list)
    resources: dict = None
    resources_window: str = "under load"
    extra_criteria: list = field(default_factory=list)  # shown first, not judged
    judge_plan: bool = True


def shown_command(full):
    """A recorded k6 command as a report shows it: paths inside the project relative to it, the
    k6 binary by its name (wherever it is installed, after a `nice -n N` prefix or not), and the
    signing secret hidden. A report names no path of the machine it ran on."""
    short = full.replace(str(PROJECT_ROOT) + "/", "")
    short = re.sub(r"(^|\s)\S*/k6 ", r"\1k6 ", short, count=1)
    return re.sub(r"JWT_SECRET=\S+", "JWT_SECRET=…", short)


class Context:
    """Everything one run directory holds, read on demand."""

    def __init__(self, run_dir, out, command, k6_exit=0, started="", finished="", k6_version=""):
        self.run_dir, self.out = Path(run_dir), Path(out)
        self.command, self.k6_exit, self.k6_version = command, k6_exit, k6_version
        self.started, self.finished = started, finished
        self.run_dir_rel = rel(self.run_dir)

    @cached_property
    def summary(self):
        return Summary(read_json(self.run_dir / "summary.json", {}))

    def summary_of(self, name):
        data = read_json(self.run_dir / name)
        return Summary(data) if data else None

    @cached_property
    def samples(self):
        return read_tsv(self.run_dir / "samples.tsv")

    @cached_property
    def series(self):
        lines = read_text(self.run_dir / "metrics-series.jsonl").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    @cached_property
    def server_env(self):
        lines = read_text(self.run_dir / "server.env").splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    @cached_property
    def k6_cmd_full(self):
        return read_text(self.run_dir / "k6.cmd").strip()

    @cached_property
    def k6_env(self):
        return env_of_command(self.k6_cmd_full)

    @cached_property
    def k6_cmd(self):
        return shown_command(self.k6_cmd_full)

    @cached_property
    def prom(self):
        return parse_prometheus(read_text(self.run_dir / "metrics.txt"))

    @cached_property
    def prom_prepare(self):
        return parse_prometheus(read_text(self.run_dir / "metrics.prepare.txt"))

    @cached_property
    def source(self):
        return read_json(self.run_dir / "source.json", {}) or {}

    @cached_property
    def checks(self):
        """The scenario's data measurements (None when the run had none)."""
        return read_json(self.run_dir / "checks.json")

    @property
    def checks_ok(self):
        return bool(self.checks) and all(c["passed"] is not False for c in self.checks)

    def check_value(self, name):
        for c in self.checks or []:
            if c["check"] == name and c["actual"].isdigit():
                return int(c["actual"])
        return None

    @cached_property
    def pg(self):
        """pg_stat_database of the run's database: after - before."""
        before = read_json(self.run_dir / "pgstat.before.json", {}) or {}
        after = read_json(self.run_dir / "pgstat.after.json", {}) or {}
        return {k: v - before.get(k, 0) for k, v in after.items()}

    @cached_property
    def verify(self):
        return verify_result(self.run_dir)

    @cached_property
    def serverlog(self):
        return server_log_summary(self.run_dir / "server.log")

    @cached_property
    def machine(self):
        model = re.search(r"^model name\s*:\s*(.+)$", read_text("/proc/cpuinfo"), re.M)
        return {"nproc": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                "cpu_model": model.group(1).strip() if model else "unknown", "kernel": os.uname().release}

    @property
    def scale(self):
        return float(self.k6_env.get("LATENCY_SCALE", "1") or 1)

    @property
    def smoke(self):
        return self.k6_env.get("SMOKE") == "1" or self.scale != 1

    def env_int(self, name, default):
        return int(self.k6_env.get(name, default) or default)

    @property
    def seed(self):
        return read_text(self.run_dir / "seed.args").strip()


def server_log_summary(path, top=8):
    """The server log's size and its WARN/ERROR lines counted by message (colours stripped)."""
    counts = {}
    size = 0
    try:
        size = os.path.getsize(path)
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"^\S+Z\s+(WARN|ERROR)\s+(.*)$", re.sub(r"\x1b\[[0-9;]*m", "", line).rstrip())
                if m:
                    key = f"{m.group(1)} {m.group(2)[:160]}"
                    counts[key] = counts.get(key, 0) + 1
    except OSError:
        pass
    return {"bytes": size, "top": sorted(counts.items(), key=lambda x: -x[1])[:top]}


def resources_of(rows, window=None):
    """Peaks over every sample and averages over the samples in `window` (all when none are)."""
    sel = [r for r in rows if window is None or window(r)] or rows

    def peak(key):
        vals = [r[key] for r in rows if r.get(key) is not None]
        return max(vals) if vals else None

    def avg(key):
        vals = [r[key] for r in sel if r.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    out = {}
    for key in ("server_cpu", "k6_cpu", "redis_cpu", "pg_cpu", "machine_busy", "pool_in_use"):
        out[f"{key}_peak"], out[f"{key}_avg"] = peak(key), avg(key)
    out["server_rss_peak_mb"] = (peak("server_rss_kb") or 0) / 1024
    out["k6_rss_peak_mb"] = (peak("k6_rss_kb") or 0) / 1024
    out["pool_open_peak"] = peak("pool_open")
    out["build_processes_peak"] = peak("build_procs")
    out["samples"], out["samples_averaged"] = len(rows), len(sel)
    return out


def resource_rows(res):
    rows = [["server", f"{num(res['server_cpu_peak'], 0)} %", f"{num(res['server_cpu_avg'], 0)} %",
             f"{num(res['server_rss_peak_mb'], 0)} MB"]]
    if res.get("pg_cpu_peak") is not None:
        rows.append(["PostgreSQL (all backends)", f"{num(res['pg_cpu_peak'], 0)} %", f"{num(res['pg_cpu_avg'], 0)} %", ""])
    rows.append(["k6", f"{num(res['k6_cpu_peak'], 0)} %", f"{num(res['k6_cpu_avg'], 0)} %", f"{num(res['k6_rss_peak_mb'], 0)} MB"])
    rows.append(["Redis", f"{num(res['redis_cpu_peak'], 0)} %", f"{num(res['redis_cpu_avg'], 0)} %", ""])
    rows.append(["whole machine (busy, 0–100 % of all cores)", f"{num(res['machine_busy_peak'], 0)} %",
                 f"{num(res['machine_busy_avg'], 0)} %", ""])
    if res.get("pool_in_use_peak") is not None:
        rows.append([f"database pool: connections in use (of {num(res.get('pool_open_peak'), 0)} open)",
                     num(res["pool_in_use_peak"], 0), num(res["pool_in_use_avg"], 0), ""])
    if res.get("build_processes_peak"):
        rows.append(["other builds on the machine (rustc/cargo/cc/ld processes, peak)", num(res["build_processes_peak"], 0), "", ""])
    return rows


def label_of(labels, name, expr, scale):
    """The label of threshold (name, expr), also when its latency limit was scaled (smoke)."""
    if (name, expr) in labels:
        return labels[(name, expr)]
    m = re.match(r"^(p\(\d+\)|max|avg|med)<(\d+(?:\.\d+)?)$", expr)
    if m and scale != 1:
        key = (name, f"{m.group(1)}<{float(m.group(2)) / scale:g}")
        if key in labels:
            label, measured = labels[key]
            return f"{label} (× {scale:g} here: {m.group(2)})", measured
    return f"`{name}` {expr}", ""


def criteria(ctx, r):
    rows = list(r.extra_criteria)
    for name, expr, ok in r.plan:
        label, measured = label_of(r.labels, name, expr, ctx.scale)
        rows.append((label, measured, ok))
    return rows + list(r.goals)


def judge(ctx, r):
    """Passed: every judged threshold and goal, k6 ran to the end (0, or 99: thresholds failed),
    and verify did not fail."""
    plan_ok = all(ok for _, _, ok in r.plan) if r.judge_plan else True
    goals_ok = all(ok is not False for _, _, ok in r.goals)
    return plan_ok and goals_ok and ctx.k6_exit in (0, 99) and ctx.verify["passed"] is not False


def run_rows(ctx, r):
    m, src = ctx.machine, ctx.source
    n = int(src.get("instances", 1) or 1)
    inst = f"{n} instances (k6 VUs spread over them; server CPU and RSS are their sums) of a " if n > 1 else ""
    server = (f"{inst}{src.get('profile', 'release')} build of `{src.get('commit', '')}`"
              + (" plus uncommitted changes in the working tree" if src.get("uncommitted_server_changes") else "")
              + "; PostgreSQL, Redis and tansu on the same machine")
    rows = [("date (UTC)", f"{ctx.started} → {ctx.finished}"), ("command", f"`{ctx.command}`"),
            ("k6", f"`{ctx.k6_cmd}` ({ctx.k6_version})"),
            ("machine", f"{m['nproc']} vCPU ({m['cpu_model']}), {m['memory_gib']} GiB RAM, Linux {m['kernel']}"),
            ("server", server)]
    if ctx.seed:
        rows.append(("data", f"`concert-reservation {ctx.seed}`"))
    return rows + [("load model", r.load_model)] + list(r.run_rows)


def redacted_settings(env, shown_secret):
    out = {}
    for k, v in env.items():
        if k == "JWT_SECRET":
            v = shown_secret(v)
        out[k] = v
    return out


def json_of(ctx, scenario, r, passed):
    data = {
        "scenario": scenario, "passed": passed, "command": ctx.command, "k6_command": ctx.k6_cmd,
        "k6_version": ctx.k6_version, "k6_exit": ctx.k6_exit, "started": ctx.started, "finished": ctx.finished,
        "machine": ctx.machine, "source": ctx.source, "seed": ctx.seed,
        "server_settings": redacted_settings(ctx.server_env, lambda v: "(redacted)"),
        "thresholds": [{"metric": n, "threshold": e, "passed": ok} for n, e, ok in r.plan],
        "goals": [{"goal": g, "measured": m, "passed": ok} for g, m, ok in r.goals],
    }
    data.update(r.data)
    if ctx.checks is not None:
        data["sql_checks"] = ctx.checks
        data["pg_stat_database_delta"] = ctx.pg
    if r.resources is not None:
        data.setdefault("resources", r.resources)
    data.setdefault("server_log", ctx.serverlog)
    data["samples"] = ctx.samples
    data["verify"] = {k: ctx.verify.get(k) for k in ("status", "passed", "result")}
    return data


def _environment():
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["fmt_num"] = num
    env.filters["pass_fail"] = pass_fail
    return env


def render(ctx, scenario, r):
    """Writes <out>.md, <out>.json and the charts; returns whether the run passed."""
    passed = judge(ctx, r)
    chart_list = charts.draw(ctx, ctx.out)
    verify_data = ctx.verify.get("result") or {}
    md = _environment().get_template("report.md.j2").render(
        r=r, ctx=ctx, passed=passed, run_rows=run_rows(ctx, r), criteria=criteria(ctx, r),
        server_settings=redacted_settings(ctx.server_env, lambda v: "(dev secret)" if v == DEV_SECRET else "(set)"),
        charts=[{"title": c["title"], "path": os.path.relpath(c["path"], ctx.out.parent)} for c in chart_list],
        checks=ctx.checks, verify=ctx.verify, verify_checks=verify_data.get("checks") or [],
        verify_points=verify_data.get("points") or {}, serverlog=ctx.serverlog,
        resource_rows=resource_rows(r.resources) if r.resources else [], out_name=ctx.out.name)
    ctx.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{ctx.out}.md").write_text(re.sub(r"\n{3,}", "\n\n", md), encoding="utf-8")
    data = json_of(ctx, scenario, r, passed)
    data["charts"] = [os.path.relpath(c["path"], ctx.out.parent) for c in chart_list]
    write_json(f"{ctx.out}.json", data)
    return passed


def console_summary(out):
    """The criteria, the data checks' table and verify's section of a written report, for the
    terminal."""
    md = Path(f"{out}.md").read_text(encoding="utf-8")
    keep = []
    for part in re.split(r"(?m)^(?=## )", md):
        if part.startswith(("## Thresholds and goals", "## Integrity")):
            keep.append(part.rstrip())
        elif part.startswith("## Data checks"):
            keep.append(part.split("```sql")[0].rstrip())
    return "\n\n".join(keep)
