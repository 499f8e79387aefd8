"""One scenario run, start to end: services, build, database, servers, k6 with the sampler,
drain, data checks, verify, report. The scenario object says what differs (scenarios/)."""

import os
import re
import subprocess
import time
from pathlib import Path

from loadtest import k6, report
from loadtest.checks import run_measures, run_verify
from loadtest.sampler import Sampler
from loadtest.server import Servers, build
from loadtest.services import Database, Redis, sibling_database, start_services
from loadtest.util import (DEV_SECRET, PROJECT_ROOT, RESULTS_DIR, RUN_DIR, Fatal, read_text, rel, say, utc_now,
                           write_json)

# Environment variables a caller may set that change a run: recorded in the command to reproduce it.
REPRODUCE_ENV = ("LOAD_RUST_BACKTRACE", "SEATS", "PREPARE_HOLDS", "LOAD_REPORT_NAME", "LOAD_PROFILE", "SEATS_PER_HOLD",
                 "TARGET_SECONDS", "ALIGN_EXPIRY", "SPIKE_FACTOR", "BASELINE_SECONDS", "BURST_SECONDS",
                 "RECOVERY_SECONDS", "ADMIT_SECONDS", "CONNECT_SECONDS", "CEILING_VUS", "HOLD_VUS", "PGBENCH_CLIENTS",
                 "PGBENCH_JOBS", "SEATS_PER_SCHEDULE", "LOAD_CONCERTS", "PAY_VUS", "PAY_HOLDS", "DRILL_AT_SECONDS",
                 "DRILL_LENGTH_SECONDS", "DRILL_AFTER_SECONDS", "OPENS_IN_SECONDS", "BOOKING_CAPACITY",
                 "PLAN_SECONDS_TO_BUY", "PLAN_CONVERSION")


class Run:
    def __init__(self, scenario, opts, stamp):
        self.scenario, self.opts, self.stamp = scenario, opts, stamp
        self.out_dir = RUN_DIR / "load" / f"{scenario.name}-{stamp}"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(os.environ.get("LOAD_DATABASE_URL") or sibling_database("concert_reservation_load"))
        self.redis = Redis(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379",
                           f"{os.environ.get('LOAD_REDIS_PREFIX') or 'load'}:{scenario.name}:")
        self.jwt_secret = os.environ.get("JWT_SECRET") or DEV_SECRET
        self.k6_bin = k6.k6_binary()
        self.profile = opts.get("profile") or os.environ.get("LOAD_PROFILE") or "release"
        self.instances = str(opts.get("instances") or os.environ.get("LOAD_INSTANCES") or 1)
        if not self.instances.isdigit() or not 1 <= int(self.instances) <= 9:
            raise Fatal("--instances takes 1 to 9")
        self.servers = None
        self.binary = None
        self.server_env = {}
        self.pids = {}

    def command_line(self):
        line = f"scripts/load {self.scenario.name}"
        if self.opts.get("fault"):
            line = f"scripts/drill {self.opts['fault']}"
        for opt in ("users", "rate", "duration", "holds", "ttl", "subscribers", "step", "max", "poll", "profile"):
            if self.opts.get(opt):
                line += f" --{opt} {self.opts[opt]}"
        names = list(self.scenario.server_env) + list(k6.PASSED_THROUGH) + list(REPRODUCE_ENV)
        for name in names:
            if os.environ.get(name):
                line = f"{name}={os.environ[name]} {line}"
        return line

    def execute(self):
        """Runs the scenario and writes its report; the exit status (0 pass, 1 fail)."""
        start_services()
        self.binary = build(self.profile)
        self.record_source()
        self.prepare_database()
        self.redis.clear_prefix()
        try:
            self.scenario.setup(self)
            self.start_servers()
            self.scenario.servers_started(self)
            started, finished, k6_rc = self.measure()
            if self.scenario.checks_data:
                self.drain_outbox()
            self.servers.save_metrics()
            self.save_redis_stats("after")
        finally:
            say("stopping the server")
            if self.servers:
                self.servers.stop()
            self.scenario.teardown(self)
            self.redis.clear_prefix()
        self.check_data()
        return self.write_report(started, finished, k6_rc)

    def record_source(self):
        def git(*args):
            return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True).stdout.strip()
        write_json(self.out_dir / "source.json", {
            "commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted_server_changes": bool(git("status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock", "migrations")),
            "profile": self.profile, "instances": int(self.instances)})

    def prepare_database(self):
        say(f"preparing database {self.db.name}")
        self.db.ensure_exists()
        env = dict(os.environ, DATABASE_URL=self.db.url)
        for args in (["migrate"], ["seed", "--reset", *self.scenario.seed_args]):
            rc = subprocess.call([str(self.binary), *args], env=env)
            if rc != 0:
                raise Fatal(f"concert-reservation {args[0]} failed (exit {rc})")
        (self.out_dir / "seed.args").write_text(" ".join(["seed", "--reset", *self.scenario.seed_args]) + "\n")

    def compose_server_env(self):
        """The scenario's settings (a variable the caller exported wins) and this run's own
        database, Redis prefix, Kafka topics and consumer group."""
        env = {k: os.environ.get(k) or v for k, v in self.scenario.server_env.items()}
        run = f"load.{self.scenario.name}.{self.stamp}"
        env.update({
            "KAFKA_TOPIC_SEATS_EXPIRED": os.environ.get("KAFKA_TOPIC_SEATS_EXPIRED") or f"{run}.seats.expired",
            "KAFKA_TOPIC_BOOKING_EVENTS": os.environ.get("KAFKA_TOPIC_BOOKING_EVENTS") or f"{run}.booking.events",
            "KAFKA_CONSUMER_GROUP": os.environ.get("KAFKA_CONSUMER_GROUP") or run,
            "DATABASE_URL": self.db.url, "REDIS_URL": self.redis.url, "REDIS_KEY_PREFIX": self.redis.prefix,
            "BIND_ADDR": "127.0.0.1:0", "JWT_SECRET": self.jwt_secret, "RUST_LOG": os.environ.get("RUST_LOG") or "info",
            # As in production: no backtraces (a dev shell's RUST_BACKTRACE=1 makes every logged error
            # capture one, which under overload costs more CPU than the request).
            "RUST_BACKTRACE": os.environ.get("LOAD_RUST_BACKTRACE") or "0",
        })
        return env

    def start_servers(self):
        self.server_env = self.compose_server_env()
        self.servers = Servers(self.binary, dict(os.environ, **self.server_env),
                               int(os.environ.get("LOAD_PORT") or 18080), int(self.instances), self.out_dir, self.profile)
        self.servers.start()
        self.server_env["BIND_ADDR"] = self.servers.url.removeprefix("http://")
        (self.out_dir / "server.env").write_text("".join(f"{k}={v}\n" for k, v in self.server_env.items()))
        self.pids = {"redis": self.redis.pid(), "pg": self.db.postmaster_pid()}

    def k6_env(self, phase=None):
        env = {"BASE_URL": self.servers.url, "BASE_URLS": ",".join(self.servers.urls), "JWT_SECRET": self.jwt_secret}
        for name, value in self.scenario.k6_env.items():
            if not (phase and name == "PHASE"):
                env[name] = value
        if phase:
            env["PHASE"] = phase
        return env

    def sampler(self, name, k6_pid, queue=False):
        return Sampler(self.out_dir, name, self.servers.pids, k6_pid, self.pids["redis"], self.pids["pg"],
                       redis=self.redis, queue_concert=self.scenario.queue_concert if queue else None,
                       metrics_url=self.servers.url + "/metrics")

    def run_phase(self, phase):
        """k6 with PHASE=phase (not measured) while sampling; artefacts <phase>-*. Returns
        (seconds, k6 exit status)."""
        args = k6.command(self.k6_bin, self.scenario.script, self.k6_env(phase), self.out_dir / f"{phase}-summary.json",
                          console=self.out_dir / f"{phase}-console.log")
        t0 = time.monotonic()
        proc = k6.start(args, self.out_dir / f"{phase}-k6.log", self.out_dir / f"{phase}-k6.cmd")
        sampler = self.sampler(f"{phase}-samples", proc.pid)
        sampler.start()
        try:
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.terminate()
            sampler.stop()
        if not (self.out_dir / f"{phase}-summary.json").exists():
            print(_tail(self.out_dir / f"{phase}-k6.log"), flush=True)
            raise Fatal(f"the {phase} phase failed (k6 exit {rc})")
        return round(time.monotonic() - t0), rc

    def measure(self):
        """The prepare hook, then the measured k6 run with the sampler (and the scenario's
        `during` watcher); (started, finished, k6 exit status)."""
        if self.scenario.has_prepare:
            self.scenario.prepare(self)
            self.servers.save_metrics("metrics.prepare")
        self.save_redis_stats("before")
        if self.scenario.checks_data:
            write_json(self.out_dir / "pgstat.before.json", self.db.pg_stats())
        args = k6.command(self.k6_bin, self.scenario.script, self.k6_env(), self.out_dir / "summary.json",
                          console=self.out_dir / "console.log" if self.scenario.console_log else None)
        say(f"running k6 ({self.scenario.script}; log: {rel(self.out_dir / 'k6.log')})")
        started = utc_now()
        proc = k6.start(args, self.out_dir / "k6.log", self.out_dir / "k6.cmd")
        sampler = self.sampler("samples", proc.pid, queue=True)
        sampler.start()
        watcher = self.scenario.during(self)
        try:
            rc = proc.wait()
            finished = utc_now()
            time.sleep(1)
        finally:
            if proc.poll() is None:
                proc.terminate()
            sampler.stop()
            if watcher:
                watcher.stop()
        return started, finished, rc

    def save_redis_stats(self, when):
        write_json(self.out_dir / f"redis-stats.{when}.json",
                   {"commandstats": self.redis.commandstats(), "latency": self.redis.latency_histogram()})

    def drain_outbox(self):
        """Waits (at most LOAD_DRAIN_SECONDS, 60) until the relay published every outbox row, so
        the data is at rest when it is checked (drain.json)."""
        limit = float(os.environ.get("LOAD_DRAIN_SECONDS") or 60)
        t0 = time.monotonic()
        while True:
            left = self.db.value("select count(*) from outbox where published_at is null")
            if left == 0 or time.monotonic() - t0 >= limit:
                break
            time.sleep(0.5)
        write_json(self.out_dir / "drain.json", {"unpublished_left": left, "waited_seconds": round(time.monotonic() - t0)})
        if left:
            say(f"the outbox still had {left} unpublished rows after {limit:g}s")

    def check_data(self):
        """pg_stat_database after and the scenario's measurements (when it checks data), then
        verify (always)."""
        if self.scenario.checks_data:
            time.sleep(1)  # pg_stat_database is updated when backends report
            write_json(self.out_dir / "pgstat.after.json", self.db.pg_stats())
            say(f"checking the data ({rel(self.out_dir / 'checks.json')})")
            write_json(self.out_dir / "checks.json", run_measures(self.db, self.scenario.measures(self)))
        run_verify(self.binary, dict(os.environ, **self.server_env), self.out_dir)

    def report_path(self):
        name = os.environ.get("LOAD_REPORT_NAME") or self.scenario.report_name
        return Path(name) if name.startswith("/") else RESULTS_DIR / name

    def write_report(self, started, finished, k6_rc):
        warnings = [line for line in read_text(self.out_dir / "k6.log").splitlines() if re.search(r"level=(error|warning)", line)]
        if warnings:
            say(f"k6 logged {len(warnings)} warnings/errors (all in {rel(self.out_dir / 'k6.log')}), the first 5:")
            print("\n".join(re.sub(r'^time="[^"]*" ', "", w)[:400] for w in warnings[:5]), flush=True)
        if not (self.out_dir / "summary.json").exists():
            print(_tail(self.out_dir / "k6.log"), flush=True)
            raise Fatal(f"k6 failed (exit {k6_rc}) without a summary; see {rel(self.out_dir / 'k6.log')}")
        out = self.report_path()
        say(f"writing {rel(out)}.md")
        ctx = report.Context(self.out_dir, out, self.command_line(), k6_rc, started, finished, k6.version(self.k6_bin))
        r = self.scenario.report(ctx)
        passed = report.render(ctx, self.scenario.name, r)
        print(report.console_summary(out), flush=True)
        say("all thresholds passed" if passed else f"some thresholds FAILED (see {rel(out)}.md)")
        return 0 if passed else 1


def _tail(path, n=20):
    return "\n".join(read_text(path).splitlines()[-n:])
