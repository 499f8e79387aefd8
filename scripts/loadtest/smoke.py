"""`scripts/load smoke`: every scenario at a tiny size, one after the other against one build
(debug unless --profile / LOAD_PROFILE says otherwise: CI has just built it for the tests),
latency limits x10 (LATENCY_SCALE), reports and charts under .run/load/smoke-<time>/ (never
docs/results/). Fails when any scenario failed."""

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import jinja2

from loadtest.server import build
from loadtest.services import sibling_database, start_services
from loadtest.util import RUN_DIR, read_json, read_text, rel, say, stamp, write_json

# (scenario, arguments, environment) of each smoke run: a few seconds of load each. A scenario run
# twice is told apart by its report name (queue-wave-fixed: the plan's fixed polling).
RUNS = (
    ("queue-wave", "--users 40", ""),
    ("queue-wave", "--users 40 --poll fixed", ""),
    ("seat-stampede", "--users 40 --duration 30", "SEATS=10"),
    ("opening", "--users 300 --duration 30", "SEATS=20 OPENS_IN_SECONDS=10"),
    ("payments", "--users 40 --rate 10 --duration 5", "PREP_VUS=4"),
    ("seat-expiry", "--holds 40 --ttl 10", "TARGET_SECONDS=30"),
    ("mixed", "--rate 16 --duration 10 --instances 2", ""),
    ("spike", "--rate 8", "BASELINE_SECONDS=5 BURST_SECONDS=5 RECOVERY_SECONDS=5"),
    ("breakpoint", "--rate 8 --step 8 --max 24 --duration 4", ""),
    ("subscriptions", "--subscribers 40", "ADMIT_SECONDS=5 CONNECT_SECONDS=2 FANS_PER_VU=10"),
    ("ceiling", "--duration 3", "CEILING_VUS=4 HOLD_VUS=4 PGBENCH_CLIENTS=4"),
    ("drill", "redis-stall --rate 16", "DRILL_AT_SECONDS=5 DRILL_LENGTH_SECONDS=3 DRILL_AFTER_SECONDS=10"),
)


def label_of(name, args):
    """The name of a smoke run's report and log: the scenario's, plus `-fixed` for `--poll fixed`;
    a drill's, `drill-<name>`."""
    if name == "drill":
        return f"drill-{args.split()[0]}"
    return f"{name}-fixed" if "--poll fixed" in args else name


def run_one(name, label, args, envs, profile, out_dir):
    """One scenario as its own `python -m loadtest` process, its report and log named `label`;
    (exit status, seconds)."""
    env = dict(os.environ, LOAD_SKIP_BUILD="1", LOAD_PROFILE=profile, LATENCY_SCALE=os.environ.get("LATENCY_SCALE", "10"),
               SMOKE="1", LOAD_REPORT_NAME=str(out_dir / label), LOAD_DRAIN_SECONDS="30",
               LOAD_DATABASE_URL=os.environ.get("LOAD_DATABASE_URL") or sibling_database("concert_reservation_smoke"),
               LOAD_REDIS_PREFIX="smoke")
    env.update(kv.split("=", 1) for kv in envs.split())
    t0 = time.monotonic()
    with open(out_dir / f"{label}.log", "wb") as log:
        rc = subprocess.call([sys.executable, "-m", "loadtest", name, *shlex.split(args)], env=env,
                             stdout=log, stderr=subprocess.STDOUT)
    return rc, round(time.monotonic() - t0)


def run(profile=None):
    profile = profile or os.environ.get("LOAD_PROFILE") or "debug"
    only = os.environ.get("SMOKE_ONLY", "").split()
    out_dir = RUN_DIR / "load" / f"smoke-{stamp()}"
    out_dir.mkdir(parents=True, exist_ok=True)
    start_services()
    build(profile)
    runs, failed = [], 0
    for name, args, envs in RUNS:
        if only and name not in only:
            continue
        label = label_of(name, args)
        say(f"smoke: {name} {args}" + (f" ({envs})" if envs else ""))
        rc, seconds = run_one(name, label, args, envs, profile, out_dir)
        runs.append(summary_of(out_dir, label, rc, seconds, args + (f" ({envs})" if envs else "")))
        if rc == 0:
            say(f"smoke: {label} passed in {seconds}s")
        else:
            failed += 1
            say(f"smoke: {label} FAILED (exit {rc}) in {seconds}s; the end of {rel(out_dir / label)}.log:")
            print("\n".join("  | " + line for line in read_text(out_dir / f"{label}.log").splitlines()[-25:]), flush=True)
    out = Path(os.environ.get("LOAD_REPORT_NAME") or out_dir / "smoke")
    write_report(out, out_dir, runs)
    say(f"smoke report: {rel(out)}.md")
    if failed:
        print(f"error: smoke: {failed} scenario(s) failed", file=sys.stderr)
        return 1
    say("smoke: every scenario passed")
    return 0


def summary_of(out_dir, name, rc, seconds, args):
    data = read_json(out_dir / f"{name}.json") or {}
    headline = next((line for line in read_text(out_dir / f"{name}.md").splitlines() if line.startswith("**Result: ")),
                    "(no report: see the log)")
    return {"scenario": name, "exit": rc, "seconds": seconds, "args": args, "passed": rc == 0, "headline": headline,
            "verify": (data.get("verify") or {}).get("status")}


def write_report(out, out_dir, runs):
    (out_dir / "runs.tsv").write_text("".join(f"{r['scenario']}\t{r['exit']}\t{r['seconds']}\t{r['args']}\n" for r in runs))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), keep_trailing_newline=True)
    Path(f"{out}.md").write_text(env.get_template("smoke.md.j2").render(runs=runs, run_dir=rel(out_dir)), encoding="utf-8")
    write_json(f"{out}.json", {"scenario": "smoke", "passed": bool(runs) and all(r["passed"] for r in runs),
                               "command": "scripts/load smoke", "runs": runs})
