"""What every scenario is: its k6 script, server settings, seed and options (its environment),
its data measurements, and its report."""

import os

from loadtest.fmt import counts, le_ms, n0, num
from loadtest.report import Section, Table
from loadtest.util import Fatal


class Scenario:
    name = ""
    title = ""
    script = ""
    takes = ()               # options it accepts besides --profile and --instances
    queue_concert = None     # the concert whose queue the sampler watches in Redis
    checks_data = True       # drain the outbox, measure the data, run verify
    has_prepare = False
    console_log = False      # k6's console lines to console.log (the drills' answers)

    def __init__(self, opts, stamp):
        self.opts, self.stamp = opts, stamp
        for opt, value in opts.items():
            if value and opt not in self.takes and opt not in ("profile", "instances"):
                raise Fatal(f"{self.name} does not take --{opt} (it takes {', '.join('--' + t for t in self.takes)})")
        self.k6_env, self.server_env, self.seed_args = {}, {}, []
        self.configure()

    @property
    def report_name(self):
        """docs/results/<this>.{md,json}: the scenario's name unless its options say otherwise."""
        return self.name

    def configure(self):
        """Sets k6_env, server_env and seed_args from the options."""
        raise NotImplementedError

    def setup(self, run):
        """Before the servers start (after the database is ready)."""

    def servers_started(self, run):
        """Once the servers are ready, before the prepare hook and the load."""

    def teardown(self, run):
        """At the end of the run, whatever happened (after the servers stopped)."""

    def prepare(self, run):
        """Runs once the server is ready, before the measured k6 run."""

    def during(self, run):
        """A watcher with stop() that runs alongside the measured k6 run, or None."""
        return None

    def measures(self, run):
        """The scenario's own counts of the data after the run ([checks.Measure])."""
        return []

    def report(self, ctx):
        raise NotImplementedError


def queue_settings(admit, cap, grace, active_ttl, tick=250, **extra):
    """Server settings of a run: the queue's, the pools' (32 each), plus `extra`. An admitted fan
    keeps the slot for the whole `active_ttl` even while holding nothing
    (QUEUE_ACTIVE_IDLE_SECONDS = active_ttl): these runs admit fans first and hold or pay later
    (a prepare phase takes every token before the first hold), which the idle rule would end."""
    env = {"QUEUE_ADMIT_PER_SECOND": admit, "QUEUE_ACTIVE_CAP": cap, "QUEUE_TICK_MS": tick,
           "QUEUE_WAITING_GRACE_SECONDS": grace, "QUEUE_ACTIVE_TTL_SECONDS": active_ttl,
           "QUEUE_ACTIVE_IDLE_SECONDS": active_ttl}
    env.update(extra)
    env.update(REDIS_POOL_SIZE=64, DATABASE_POOL_SIZE=32)
    return {k: str(v) for k, v in env.items()}


def product_queue(**extra):
    """Server settings of a run with the product's queue as it ships: adaptive admission and every
    QUEUE_* setting at its default, except those the caller exported (kept, so the report and the
    command to reproduce the run show them); the pools (32 each), plus `extra`."""
    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith("QUEUE_") and v}
    env.update(extra)
    env.update(REDIS_POOL_SIZE=64, DATABASE_POOL_SIZE=32)
    return {k: str(v) for k, v in env.items()}


# The server's defaults of the admission settings (src/config.rs).
ADMISSION_DEFAULTS = {"QUEUE_ADMIT_PER_SECOND": 50, "QUEUE_ACTIVE_CAP": 500}


def admission_text(server_env, short=False):
    """How the run's queue admitted fans, from its server settings (`short`: in a few words)."""
    rate = server_env.get("QUEUE_ADMIT_PER_SECOND")
    cap = server_env.get("QUEUE_ACTIVE_CAP")
    if short:
        return "the product's default admission" if rate is None and cap is None else "admission set for this run"
    if rate is None and cap is None:
        return (f"the product's default: adaptive (AIMD) admission under {ADMISSION_DEFAULTS['QUEUE_ADMIT_PER_SECOND']} "
                f"fans/s per concert, at most {ADMISSION_DEFAULTS['QUEUE_ACTIVE_CAP']} ACTIVE")
    rate = num(float(rate), 0) if rate is not None else f"{ADMISSION_DEFAULTS['QUEUE_ADMIT_PER_SECOND']} (default)"
    cap = num(int(cap), 0) if cap is not None else f"{ADMISSION_DEFAULTS['QUEUE_ACTIVE_CAP']} (default)"
    return f"adaptive (AIMD) admission under {rate} fans/s per concert, at most {cap} ACTIVE (set for this run)"


def admission_over_time(rows):
    """What the server's queue did, from the sampler's 1 s rows of its /metrics (summed over the
    concerts): the adaptive admission's target rate (min / mean / max over the samples that have
    it) and when a concert was first and last seen sold out (seconds of the samples; None when
    never, or when the server does not export it)."""
    rates = [r["admission_rate"] for r in rows if r.get("admission_rate") is not None]
    sold = [r["t"] for r in rows if r.get("sold_out")]
    return {"target_rate_min": min(rates) if rates else None, "target_rate_mean": sum(rates) / len(rates) if rates else None,
            "target_rate_max": max(rates) if rates else None, "sold_out_first_s": sold[0] if sold else None,
            "sold_out_last_s": sold[-1] if sold else None}


def admission_row(a):
    return ["queue (server's /metrics, 1 s samples, summed over concerts): admission target rate min / mean / max; "
            "sold out seen from / until",
            f"{num(a['target_rate_min'], 1)} / {num(a['target_rate_mean'], 1)} / {num(a['target_rate_max'], 1)} fans/s; "
            f"{num(a['sold_out_first_s'], 0, ' s')} / {num(a['sold_out_last_s'], 0, ' s')}"]


def rss_drift(rows, window_s=60):
    """The server's RSS (MB) over a run, from the sampler's 1 s rows: the mean of the first and
    of the last `window_s` seconds, their difference, and the slope of a least-squares line in
    MB per minute (None with fewer than two samples)."""
    pts = [(r["t"], r["server_rss_kb"] / 1024) for r in rows if r.get("t") is not None and r.get("server_rss_kb")]
    if len(pts) < 2:
        return None
    t0, t1 = pts[0][0], pts[-1][0]
    first = [mb for t, mb in pts if t <= t0 + window_s]
    last = [mb for t, mb in pts if t >= t1 - window_s]
    n = len(pts)
    mean_t, mean_mb = sum(t for t, _ in pts) / n, sum(mb for _, mb in pts) / n
    var = sum((t - mean_t) ** 2 for t, _ in pts)
    slope = sum((t - mean_t) * (mb - mean_mb) for t, mb in pts) / var if var else 0.0
    start, end = sum(first) / len(first), sum(last) / len(last)
    return {"start_mb": start, "end_mb": end, "drift_mb": end - start, "peak_mb": max(mb for _, mb in pts),
            "slope_mb_per_min": slope * 60, "window_s": window_s, "seconds": t1 - t0}


def pg_rows(pg):
    return [["PostgreSQL deadlocks during the run (`pg_stat_database.deadlocks` delta)", n0(pg.get("deadlocks"))],
            ["PostgreSQL transactions committed / rolled back during the run",
             f"{n0(pg.get('xact_commit'))} / {n0(pg.get('xact_rollback'))}"]]


def retries_row(retries):
    return ["transactions retried (deadlock / serialization / lock timeout; `db_retries_total`)", counts(retries) if retries else "0"]


def kv_table(rows, caption=""):
    return Table(["metric", "value"], rows, caption)


def section(title, *blocks):
    return Section(title, list(blocks))


def deadlock_goal(pg):
    d = pg.get("deadlocks")
    return ("deadlocks < 10 (pg_stat_database, load database)", n0(d), None if d is None else d < 10)


def busy_k6(r):
    return (r.get("k6_cpu") or 0) > 5


__all__ = ["Scenario", "queue_settings", "product_queue", "admission_text", "admission_over_time", "admission_row", "rss_drift",
           "ADMISSION_DEFAULTS", "pg_rows", "retries_row", "kv_table", "section", "deadlock_goal", "busy_k6", "le_ms"]
