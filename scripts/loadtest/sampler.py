"""Once a second while k6 runs: CPU and RSS of the server, k6, Redis and PostgreSQL (psutil), the
machine's busy share, the queue's sizes in Redis, and the server's /metrics. Writes samples.tsv
(one row a second) and metrics-series.jsonl (the scraped counters and histograms the charts use)."""

import json
import sys
import threading
import time

import psutil

from loadtest.metrics import counter_by, counter_sum, hist_buckets, parse_prometheus
from loadtest.server import http_get

BUILD_PROCESSES = {"rustc", "cargo", "cc1", "cc1plus", "ld", "ld.lld", "cargo-nextest"}
COLUMNS = ["t", "server_cpu", "server_rss_kb", "k6_cpu", "k6_rss_kb", "redis_cpu", "redis_rss_kb",
           "machine_busy", "waiting", "active", "build_procs", "observed_rate", "pool_in_use", "pool_open",
           "pg_cpu", "consumer_lag", "outbox_backlog", "outbox_published", "consumer_events",
           "released_consumer", "released_backstop", "holds_expired", "queue_subscribers", "graphql_requests",
           "admission_rate", "sold_out"]
# Column -> (metric, label match) read from /metrics each second (counters are totals since start).
SCRAPED = {
    "consumer_lag": ("consumer_lag", None), "outbox_backlog": ("outbox_backlog", None),
    "outbox_published": ("outbox_published_total", None), "consumer_events": ("consumer_events_total", None),
    "released_consumer": ("seats_released_total", {"by": "consumer"}),
    "released_backstop": ("seats_released_total", {"by": "backstop"}),
    "holds_expired": ("holds_expired_total", None), "queue_subscribers": ("queue_subscribers", None),
    "graphql_requests": ("graphql_requests_total", None),
    # Adaptive admission: the rate the admitter aims at, and 1 while the concert is sold out.
    "admission_rate": ("queue_admission_target_rate_per_second", None), "sold_out": ("queue_sold_out", None),
}


class CpuMeter:
    """CPU % (of one core) and RSS (kB) of a set of processes between two reads."""

    def __init__(self, pids, with_children=False):
        self.procs = [_process(pid) for pid in pids if pid]
        self.with_children = with_children
        self.prev = self._cpu_seconds()

    def _members(self):
        for proc in self.procs:
            if proc is None:
                continue
            yield proc
            if self.with_children:
                try:
                    yield from proc.children()
                except psutil.Error:
                    pass

    def _cpu_seconds(self):
        total = 0.0
        for proc in self._members():
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def read(self, dt):
        now = self._cpu_seconds()
        pct = max(0.0, 100 * (now - self.prev) / dt) if dt > 0 else 0.0
        self.prev = now
        rss = 0
        for proc in self.procs:
            try:
                rss += proc.memory_info().rss // 1024
            except (psutil.Error, AttributeError):
                pass
        return pct, rss


def _process(pid):
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def build_processes():
    return sum(1 for p in psutil.process_iter(["name"]) if p.info["name"] in BUILD_PROCESSES)


class Sampler(threading.Thread):
    def __init__(self, out_dir, name, server_pids, k6_pid, redis_pid, pg_pid, redis=None, queue_concert=None,
                 metrics_url=None, progress=True):
        super().__init__(daemon=True)
        self.tsv = out_dir / f"{name}.tsv"
        self.series = out_dir / f"{name.replace('samples', 'metrics-series')}.jsonl"
        self.meters = {"server": CpuMeter(server_pids), "k6": CpuMeter([k6_pid]), "redis": CpuMeter([redis_pid]),
                       "pg": CpuMeter([pg_pid], with_children=True) if pg_pid else None}
        self.redis, self.queue_concert, self.metrics_url = redis, queue_concert, metrics_url
        self.progress = progress
        self.stop_event = threading.Event()

    def stop(self):
        self.stop_event.set()
        self.join(timeout=5)

    def run(self):
        start = prev = time.monotonic()
        psutil.cpu_percent(None)
        with open(self.tsv, "w", encoding="utf-8") as tsv, open(self.series, "w", encoding="utf-8") as series:
            tsv.write("\t".join(COLUMNS) + "\n")
            n = 0
            while not self.stop_event.wait(1.0):
                now = time.monotonic()
                row, scrape = self.sample(now - start, now - prev)
                prev = now
                tsv.write("\t".join(_cell(row.get(c)) for c in COLUMNS) + "\n")
                tsv.flush()
                if scrape is not None:
                    series.write(json.dumps(scrape) + "\n")
                n += 1
                if self.progress and n % 5 == 0:
                    print(progress_line(row), file=sys.stderr, flush=True)

    def sample(self, t, dt):
        row = {"t": round(t, 1), "machine_busy": psutil.cpu_percent(None), "build_procs": build_processes()}
        for name in ("server", "k6", "redis"):
            row[f"{name}_cpu"], row[f"{name}_rss_kb"] = self.meters[name].read(dt)
        if self.meters["pg"]:
            row["pg_cpu"] = self.meters["pg"].read(dt)[0]
        if self.redis and self.queue_concert:
            row["waiting"], row["active"], row["observed_rate"] = self.redis.queue_sizes(self.queue_concert)
        scrape = self.scrape(row) if self.metrics_url else None
        return row, scrape

    def scrape(self, row):
        """Fills the /metrics columns of `row`; returns what the charts need from this scrape."""
        try:
            prom = parse_prometheus(http_get(self.metrics_url, timeout=0.8))
        except OSError:
            return None
        conns, idle = counter_sum(prom, "db_pool_connections"), counter_sum(prom, "db_pool_idle_connections")
        if conns is not None:
            row["pool_in_use"], row["pool_open"] = conns - (idle or 0), conns
        for column, (metric, match) in SCRAPED.items():
            value = counter_sum(prom, metric, match)
            # A counter the server has not incremented yet is not exported: it is 0.
            row[column] = 0 if value is None and metric.endswith("_total") else value
        return {
            "t": row["t"],
            "requests": counter_sum(prom, "graphql_requests_total"),
            "errors_by_code": counter_by(prom, "graphql_errors_total", "code"),
            "latency_buckets": {str(k): v for k, v in hist_buckets(prom, "graphql_request_duration_seconds").items()},
            "admissions": counter_sum(prom, "queue_admissions_total"),
            "queue_waiting": counter_sum(prom, "queue_waiting"),
            "queue_active": counter_sum(prom, "queue_active"),
            # Per-operation costs (the ceiling's parts): every SQL statement the pool ran, every
            # pool checkout, and the wall clock of this scrape (to place a part's window).
            "db_statements": counter_sum(prom, "db_statements_total"),
            "db_checkouts": counter_sum(prom, "db_pool_wait_seconds_count"),
            "unix": time.time(),
        }


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.1f}" if not v.is_integer() else f"{v:.0f}"
    return str(v)


def progress_line(r):
    line = (f"  [{r['t']:4.0f}s] server {r.get('server_cpu', 0):4.0f}% {r.get('server_rss_kb', 0) / 1024:5.0f} MB"
            f" | k6 {r.get('k6_cpu', 0):4.0f}% | redis {r.get('redis_cpu', 0):3.0f}% | machine {r['machine_busy']:3.0f}% busy")
    if r.get("waiting") is not None:
        line += f" | waiting {r['waiting']:6} active {r['active']:6}"
    if r.get("pool_in_use") is not None:
        line += f" | db pool {r['pool_in_use']:.0f}/{r['pool_open']:.0f}"
    if r.get("pg_cpu") is not None:
        line += f" | postgres {r['pg_cpu']:.0f}%"
    if r.get("outbox_backlog"):
        line += f" | outbox {r['outbox_backlog']:.0f} lag {r.get('consumer_lag') or 0:.0f}"
    if r.get("queue_subscribers"):
        line += f" | subscribers {r['queue_subscribers']:.0f}"
    if r.get("build_procs"):
        line += f"  ({r['build_procs']} build procs)"
    return line
