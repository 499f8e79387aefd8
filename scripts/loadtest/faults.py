"""The faults a drill injects (`scripts/drill <name>`): each stops, stalls or cuts one component
at a known moment of the load, restores it, and records when each step happened and what it saw
(a drill's `events`, in Unix seconds). The components are the real ones the run uses: this
machine's PostgreSQL, Redis and broker processes, and the run's own server instances."""

import os
import signal
import socket
import subprocess
import threading
import time

import psutil
import redis

from loadtest.relay import Relay, free_tcp_port
from loadtest.server import Servers
from loadtest.util import PROJECT_ROOT, Fatal, say


class Events:
    """What happened when, in Unix seconds; written to the run's drill-events.json."""

    def __init__(self):
        self.items, self.facts, self.lock = [], {}, threading.Lock()

    def add(self, what, at=None):
        with self.lock:
            self.items.append({"t": at or time.time(), "what": what})
        say(f"drill: {what}")

    def fact(self, name, value):
        with self.lock:
            self.facts[name] = value

    def first(self, what):
        return next((e["t"] for e in self.items if e["what"] == what), None)

    def as_json(self):
        return {"events": self.items, "facts": self.facts}


def wait_until(check, timeout, step=0.05):
    """The Unix time `check()` first returned true (exceptions count as false), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return time.time()
        except Exception:  # noqa: BLE001  a component still coming back
            pass
        time.sleep(step)
    return None


def start_services(log_path):
    """scripts/services start: brings back whatever of PostgreSQL, Redis and the broker is down,
    the way it was started (its data directory, its settings)."""
    with open(log_path, "ab") as log:
        rc = subprocess.call([str(PROJECT_ROOT / "scripts" / "services"), "start"], stdout=log, stderr=subprocess.STDOUT)
    if rc != 0:
        raise Fatal(f"scripts/services start failed while restoring (exit {rc}; {log_path})")


def postgres_processes():
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]


def signal_all(procs, sig):
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.Error:
            pass


RECOVERY = ("requests succeed again (failures < 0.5 % in every later 5 s window) within 10 s of the component being back",
            "recovered_after_back_s", 10)


class Fault:
    """One drill: what it does to which component, when (at_s after the load starts), for how
    long (length_s; 0: restored as soon as it took effect), and how long the load goes on after."""

    name = ""
    title = ""
    what = ""
    at_s, length_s, after_s = 30, 20, 60
    server_env = {}
    k6_env = {}
    # (label, fact name, limit) the report judges besides RECOVERY, which every drill judges
    target = None

    def setup(self, run):
        """Before the servers start: extra server settings."""
        return {}

    def started(self, run):
        """After the servers started, before the load."""

    def inject(self, run, events):
        raise NotImplementedError

    def restore(self, run, events):
        raise NotImplementedError

    def teardown(self, run):
        """Always, at the end of the run."""

    @property
    def load_seconds(self):
        return self.at_s + self.length_s + self.after_s


class PostgresRestart(Fault):
    name = "postgres-restart"
    title = "PostgreSQL restarted (fast shutdown) mid-load"
    what = "the postmaster gets SIGINT (fast shutdown: every session ends), then scripts/services start brings it back"
    length_s = 0

    def inject(self, run, events):
        pid = run.db.postmaster_pid()
        os.kill(pid, signal.SIGINT)
        events.add("postgres: fast shutdown requested")
        wait_until(lambda: not psutil.pid_exists(pid), 60)
        events.add("postgres: stopped")

    def restore(self, run, events):
        start_services(run.out_dir / "drill-services.log")
        at = wait_until(lambda: run.db.value("select 1") == 1, 60)
        events.add("component back", at)
        run.pids["pg"] = run.db.postmaster_pid()


class PostgresStall(Fault):
    name = "postgres-stall"
    title = "PostgreSQL stalled for 20 s (SIGSTOP of every PostgreSQL process)"
    what = "every postgres process gets SIGSTOP (it accepts nothing and answers nothing), then SIGCONT 20 s later"

    def inject(self, run, events):
        self.procs = postgres_processes()
        signal_all(self.procs, signal.SIGSTOP)
        events.add(f"postgres: {len(self.procs)} processes stopped")

    def restore(self, run, events):
        signal_all(self.procs, signal.SIGCONT)
        events.add("component back")

    def teardown(self, run):
        signal_all(getattr(self, "procs", []), signal.SIGCONT)  # never leave the database stopped


class RedisFault(Fault):
    """Snapshots every concert's waiting line before the fault and after Redis is back, and
    times how long admission takes to resume (a fan of the line becoming ACTIVE)."""

    server_env = {"QUEUE_ADMIT_PER_SECOND": "1"}  # a line builds up: 1.5 fans/s arrive per concert
    k6_env = {"MAX_WAIT_SECONDS": "150"}
    target = ("admission resumes within 5 s of Redis being back, the waiting order intact", "admission_resumed_after_back_s", 5)

    def lines(self, run):
        out = {}
        for concert in range(1, int(run.scenario.k6_env["CONCERTS"]) + 1):
            out[concert] = run.redis.client.zrange(f"{run.redis.prefix}q:{{{concert}}}:waiting", 0, -1)
        return out

    def before(self, run, events):
        self.snapshot = self.lines(run)
        events.fact("waiting_before", sum(len(v) for v in self.snapshot.values()))

    def after(self, run, events, back):
        """The saved line against one moment right after Redis is back: each fan still waiting (in
        the same order) or admitted; then how long until a fan of the line is ACTIVE."""
        key = lambda c, name: f"{run.redis.prefix}q:{{{c}}}:{name}"
        after = self.lines(run)
        active = {c: set(run.redis.client.zrange(key(c, "active"), 0, -1)) for c in self.snapshot}
        kept = admitted = 0
        in_order = True
        for concert, before in self.snapshot.items():
            waiting = set(after[concert])
            kept += sum(1 for t in before if t in waiting)
            admitted += sum(1 for t in before if t in active[concert] and t not in waiting)
            in_order &= [t for t in before if t in waiting] == [t for t in after[concert] if t in set(before)]
        events.fact("waiting_order_intact", in_order)
        events.fact("waiting_kept", kept)
        events.fact("waiting_admitted_by_then", admitted)
        heads = [(c, line[0]) for c, line in self.snapshot.items() if line and line[0] not in active[c]]
        at = wait_until(lambda: any(run.redis.client.zscore(key(c, "active"), t) is not None for c, t in heads), 60,
                        step=0.1) if heads else None
        if at:
            events.add("queue: a fan of the saved line became ACTIVE", at)
            events.fact("admission_resumed_after_back_s", round(at - back, 2))


class RedisRestart(RedisFault):
    name = "redis-restart"
    title = "Redis restarted (SHUTDOWN, append-only file on) mid-load"
    what = "Redis is shut down (SHUTDOWN: the append-only file is written out), then scripts/services start brings it back"
    length_s = 0

    def inject(self, run, events):
        self.before(run, events)
        pid = run.redis.pid()
        try:
            run.redis.client.shutdown()
        except redis.RedisError:
            pass
        events.add("redis: shutdown")
        wait_until(lambda: not psutil.pid_exists(pid), 30)
        events.add("redis: stopped")

    def restore(self, run, events):
        start_services(run.out_dir / "drill-services.log")
        back = wait_until(lambda: run.redis.client.ping(), 60)
        events.add("component back", back)
        run.pids["redis"] = run.redis.pid()
        self.after(run, events, back)


class RedisStall(RedisFault):
    name = "redis-stall"
    title = "Redis stalled for 20 s (SIGSTOP)"
    what = "the redis-server process gets SIGSTOP (connections stay open, nothing answers), then SIGCONT 20 s later"

    def inject(self, run, events):
        self.before(run, events)
        self.pid = run.redis.pid()
        os.kill(self.pid, signal.SIGSTOP)
        events.add("redis: stopped (SIGSTOP)")

    def restore(self, run, events):
        os.kill(self.pid, signal.SIGCONT)
        back = time.time()
        events.add("component back", back)
        self.after(run, events, back)

    def teardown(self, run):
        if hasattr(self, "pid") and psutil.pid_exists(self.pid):
            os.kill(self.pid, signal.SIGCONT)  # never leave Redis stopped


class BrokerCut(Fault):
    """The servers reach a broker of this run's own through a relay this drill cuts: a network
    cut, not a broker restart (tansu's in-memory storage would come back empty)."""

    name = "broker-cut"
    title = "Kafka broker cut off for 60 s"
    what = ("every connection between the servers and the broker is dropped and new ones are refused for 60 s "
            "(a relay in front of a broker of the run's own), then connections are let through again")
    length_s = 60
    server_env = {"HOLD_TTL_SECONDS": "20"}
    target = ("outbox drained after the cut (no event lost)", "outbox_drained_after_back_s", 60)

    def setup(self, run):
        port = free_tcp_port()
        self.relay = Relay(port)
        tansu = os.environ.get("TANSU_BIN") or os.path.expanduser("~/.cargo/bin/tansu")
        self.broker = subprocess.Popen(
            [tansu, "broker", "--storage-engine", "memory://tansu/", "--listener-url", f"tcp://127.0.0.1:{port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{self.relay.port}"],
            env=dict(os.environ, RUST_LOG="warn"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if wait_until(lambda: _listening(port), 15) is None:
            raise Fatal("the drill's own tansu broker did not listen within 15 s")
        return {"KAFKA_BROKERS": f"127.0.0.1:{self.relay.port}"}

    def inject(self, run, events):
        self.relay.cut()
        events.add("broker: cut off")

    def restore(self, run, events):
        stuck_holds(run, events)
        self.relay.restore()
        back = time.time()
        events.add("component back", back)
        at = wait_until(lambda: run.db.value("select count(*) from outbox where published_at is null") == 0, 120, step=0.5)
        if at:
            events.add("outbox: every event published", at)
            events.fact("outbox_drained_after_back_s", round(at - back, 2))

    def teardown(self, run):
        if hasattr(self, "broker"):
            self.broker.kill()
            self.broker.wait()
            self.relay.close()


class InstanceKill(Fault):
    """SIGKILL of the first instance, the one that took every concert's queue lease (it started
    first); an orchestrator starts it again 20 s later. Times how long its leases take to move to
    the other instance. The sampler reads the first instance's /metrics, so its columns pause
    while it is down; Prometheus scrapes both."""

    name = "instance-kill"
    title = "One of two instances killed (SIGKILL) in the middle of payments"
    what = "instance 1 (holding the queue leases) gets SIGKILL; 20 s later it is started again on the same port, as an orchestrator would"
    target = ("every queue lease of the killed instance moved within two lease periods (4 s)", "lease_moved_after_kill_s", 4)

    def leases(self, run):
        keys = [f"{run.redis.prefix}q:{{{c}}}:lease" for c in range(1, int(run.scenario.k6_env["CONCERTS"]) + 1)]
        return dict(zip(keys, run.redis.client.mget(keys)))

    def inject(self, run, events):
        before = {k: v for k, v in self.leases(run).items() if v}
        proc = run.servers.procs[0]
        proc.kill()
        killed = time.time()
        events.add("instance 1: killed (SIGKILL)", killed)
        moved = {}
        while time.time() - killed < 15 and len(moved) < len(before):
            for k, v in self.leases(run).items():
                if k in before and k not in moved and v != before[k]:
                    moved[k] = time.time()
            time.sleep(0.05)
        proc.wait()
        events.fact("leases_before_kill", len(before))
        events.fact("leases_moved", len(moved))
        if moved:
            events.add("queue: the last lease of the killed instance moved", max(moved.values()))
            events.fact("lease_moved_after_kill_s", round(max(moved.values()) - killed, 2))

    def restore(self, run, events):
        run.servers.restart(0)
        events.add("component back")


class ConsumerStop(Fault):
    """The instances run without a consumer; one worker process (no traffic) runs it, as a
    separate deployment would. The worker is stopped for longer than the backstop."""

    name = "consumer-stop"
    title = "Expiry consumer stopped for 90 s (longer than the 30 s backstop)"
    what = ("the worker process that alone runs the Kafka consumer is stopped (SIGTERM) for 90 s while holds "
            "expire, then started again")
    length_s = 90
    server_env = {"HOLD_TTL_SECONDS": "20", "KAFKA_CONSUMER_ENABLED": "false"}
    k6_env = {"UNPAID_SHARE": "0.3"}
    target = ("no hold past due by more than the backstop (30 s) and 15 s still HELD when the consumer came back",
              "holds_stuck_when_restored", 0)

    def worker(self, run, n):
        env = dict(os.environ, **run.server_env)
        env["KAFKA_CONSUMER_ENABLED"] = "true"
        return Servers(run.binary, env, run.servers.first_port + 10, 1, run.out_dir, run.profile, log_name=f"worker-{n}.log")

    def started(self, run):
        self.proc = self.worker(run, 1)
        self.proc.start()

    def inject(self, run, events):
        self.proc.stop()
        events.add("consumer: worker stopped")

    def restore(self, run, events):
        stuck_holds(run, events)
        self.proc = self.worker(run, 2)
        self.proc.start()
        events.add("component back")

    def teardown(self, run):
        if hasattr(self, "proc"):
            self.proc.stop()


class ConnectionFlood(Fault):
    """10,000 idle websockets and 1,000 slow clients against instance 1 for 60 s, while the
    journeys go on against both instances."""

    name = "connection-flood"
    title = "10,000 idle websockets and 1,000 slow clients (slowloris) against one instance"
    what = ("instance 1 gets 10,000 websockets that finish the graphql-transport-ws handshake and then say nothing, "
            "and 1,000 clients that send a request's headers or body one piece every 5 s; all are closed 60 s later")
    length_s = 60
    target = ("answers to the journeys during the flood fail < 0.5 %", "failed_share_during_fault", 0.005)

    def inject(self, run, events):
        from loadtest.flood import Flood
        self.flood = Flood(run.servers.urls[0], 10_000, 1_000)
        opened = self.flood.start()
        events.add(f"flood: {opened['websockets_acknowledged']:,} websockets acknowledged, "
                   f"{opened['websockets_failed']:,} failed, {opened['slow_opened']:,} slow clients connected")

    def restore(self, run, events):
        if hasattr(self, "flood"):
            for name, value in self.flood.stop().items():
                events.fact(name, value)
        events.add("component back")


def stuck_holds(run, events):
    """Holds past due by more than the backstop and a margin that are still HELD: none when the
    consumer or the backstop freed every seat (checked when a fault ends)."""
    due = int(run.server_env.get("EXPIRY_BACKSTOP_SECONDS") or 30) + 15
    n = run.db.value(f"select count(*) from reservations where status = 'HELD' and expires_at < now() - interval '{due} seconds'")
    events.fact("holds_stuck_when_restored", n)
    freed = run.db.value("select count(*) from reservations where status = 'EXPIRED'")
    events.fact("holds_expired_when_restored", freed)


def _listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


FAULTS = {cls.name: cls for cls in (PostgresRestart, PostgresStall, RedisRestart, RedisStall, BrokerCut, InstanceKill,
                                    ConsumerStop, ConnectionFlood)}
