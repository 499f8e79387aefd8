"""The backing services as a run uses them: its PostgreSQL database (psycopg), its Redis key
prefix (redis-py), and the processes behind both (for sampling)."""

import os
import subprocess

import psutil
import psycopg
import redis

from loadtest.util import PROJECT_ROOT, Fatal

PG_STAT_COLUMNS = ("deadlocks", "xact_commit", "xact_rollback", "conflicts", "temp_files", "blk_read_time")


def start_services():
    """scripts/services start: PostgreSQL, Redis and Kafka, if they are not answering already
    (LOAD_SKIP_SERVICES=1: the caller runs them)."""
    if os.environ.get("LOAD_SKIP_SERVICES") == "1":
        return
    rc = subprocess.call([str(PROJECT_ROOT / "scripts" / "services"), "start"])
    if rc != 0:
        raise Fatal(f"scripts/services start failed (exit {rc})")


def dev_database_url():
    return os.environ.get("DATABASE_URL") or "postgres://postgres:postgres@127.0.0.1:5432/concert_reservation"


def sibling_database(name):
    """The URL of database `name` on the server behind DATABASE_URL."""
    return dev_database_url().rsplit("/", 1)[0] + "/" + name


class Database:
    """The run's own database (LOAD_DATABASE_URL)."""

    def __init__(self, url):
        self.url = url
        self.name = url.rsplit("/", 1)[1]

    def ensure_exists(self):
        with psycopg.connect(sibling_database("postgres"), autocommit=True) as conn:
            if not conn.execute("select 1 from pg_database where datname = %s", (self.name,)).fetchone():
                conn.execute(f'create database "{self.name}"')

    def connect(self):
        return psycopg.connect(self.url, autocommit=True)

    def value(self, sql, params=None):
        """The first column of the first row of `sql`."""
        with self.connect() as conn:
            row = conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def row(self, sql, params=None):
        with self.connect() as conn:
            return conn.execute(sql, params).fetchone()

    def execute_in_transaction(self, *statements):
        with psycopg.connect(self.url) as conn:
            for sql, params in statements:
                conn.execute(sql, params)

    def pg_stats(self):
        """This database's line of pg_stat_database."""
        cols = ", ".join(PG_STAT_COLUMNS)
        row = self.row(f"select {cols} from pg_stat_database where datname = current_database()")
        return {k: float(v) for k, v in zip(PG_STAT_COLUMNS, row or ()) if v is not None}

    def postmaster_pid(self):
        """The PostgreSQL postmaster's pid when it runs on this machine, else None."""
        try:
            data_dir = self.value("show data_directory")
            with open(os.path.join(data_dir, "postmaster.pid"), encoding="utf-8") as f:
                return int(f.readline())
        except (OSError, ValueError, psycopg.Error):
            pass
        pids = [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
        return min(pids) if pids else None


class Redis:
    """The Redis behind REDIS_URL, and one key prefix of it."""

    def __init__(self, url, prefix):
        self.url = url
        self.prefix = prefix
        self.client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=2)

    def clear_prefix(self):
        keys = list(self.client.scan_iter(match=self.prefix + "*", count=1000))
        for i in range(0, len(keys), 500):
            self.client.delete(*keys[i:i + 500])

    def pid(self):
        return int(self.client.info("server").get("process_id") or 0) or None

    def commandstats(self):
        """{command: (calls, usec)} of INFO commandstats."""
        stats = self.client.info("commandstats")
        return {k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for k, v in stats.items()}

    def latency_histogram(self):
        """{command: {"calls": n, "histogram_usec": {bound: cumulative count}}} of LATENCY HISTOGRAM."""
        try:
            raw = self.client.execute_command("LATENCY", "HISTOGRAM")
        except redis.RedisError:
            return {}
        return _latency_histogram(raw)

    def queue_sizes(self, concert):
        """(waiting, active, observed admission rate) of the queue of `concert` (-1 when unreadable)."""
        base = f"{self.prefix}q:{{{concert}}}:"
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.zcard(base + "waiting").zcard(base + "active").hget(base + "meta", "rate")
            waiting, active, rate = pipe.execute()
            return waiting, active, float(rate or 0)
        except redis.RedisError:
            return -1, -1, 0.0


def _pairs(flat):
    """[k1, v1, k2, v2, ...] (RESP2) or a dict (RESP3) -> dict."""
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[0::2], flat[1::2]))


def _latency_histogram(raw):
    out = {}
    for name, body in _pairs(raw or []).items():
        body = _pairs(body)
        hist = _pairs(body.get("histogram_usec") or [])
        out[str(name)] = {"calls": int(body.get("calls", 0)),
                          "histogram_usec": {int(k): int(v) for k, v in hist.items()}}
    return out

