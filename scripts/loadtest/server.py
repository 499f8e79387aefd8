"""The server under test: built with cargo, started as one or more instances on free ports with
the scenario's settings, stopped at the end."""

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from loadtest.util import PROJECT_ROOT, Fatal, rel, say

SOURCES = ("src", "migrations", "Cargo.toml", "Cargo.lock")


def target_dir():
    return Path(os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache/concert-reservation/target")


def _newest_source_mtime():
    newest = 0.0
    for name in SOURCES:
        path = PROJECT_ROOT / name
        files = path.rglob("*") if path.is_dir() else [path]
        newest = max([newest] + [f.stat().st_mtime for f in files if f.is_file()])
    return newest


def build(profile):
    """The binary of cargo profile `profile` (release | debug), built unless it is newer than
    every source (in CI: the debug binary nextest just built) or LOAD_SKIP_BUILD=1 and it exists."""
    if profile not in ("release", "debug"):
        raise Fatal("--profile must be release or debug")
    binary = target_dir() / profile / "concert-reservation"
    if binary.exists() and os.environ.get("LOAD_SKIP_BUILD", "0") == "1":
        return binary
    if binary.exists() and binary.stat().st_mtime >= _newest_source_mtime():
        say(f"the {profile} build is newer than every source: not rebuilding ({profile}/concert-reservation)")
        return binary
    say(f"building ({profile})")
    cmd = ["cargo", "build", "--locked", "--bin", "concert-reservation"] + (["--release"] if profile == "release" else [])
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir()), PATH=f"{Path.home()}/.cargo/bin:{os.environ['PATH']}")
    try:
        rc = subprocess.call(cmd, cwd=PROJECT_ROOT, env=env)
    except FileNotFoundError:
        raise Fatal("cargo is not installed: install Rust from https://rustup.rs") from None
    if rc != 0:
        raise Fatal(f"cargo build failed (exit {rc})")
    return binary


def free_port(port):
    """The first port from `port` on 127.0.0.1 that nothing listens on."""
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
        port += 1


def http_get(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode("utf-8", errors="replace")


class Servers:
    """N instances on consecutive free ports behind the same services; the first is the one
    whose /metrics the sampler reads."""

    def __init__(self, binary, env, first_port, count, out_dir, profile, log_name="server.log"):
        self.binary, self.env, self.out_dir, self.profile = binary, env, out_dir, profile
        self.log_name = log_name
        self.count = count
        self.procs, self.urls = [], []
        self.first_port = first_port

    def start(self):
        port = free_port(self.first_port)
        for i in range(1, self.count + 1):
            if i > 1:
                port = free_port(port + 1)
            url = f"http://127.0.0.1:{port}"
            self.procs.append(self._spawn(i, url))
            self.urls.append(url)
            self._wait_ready(self.procs[-1], url, self._log(i), i)

    def _log(self, i):
        stem, dot, ext = self.log_name.rpartition(".")
        return self.out_dir / (self.log_name if i == 1 else f"{stem}-{i}{dot}{ext}")

    def _spawn(self, i, url):
        log = self._log(i)
        say(f"starting {self.profile} server {i} of {self.count} on {url} (log: {rel(log)})")
        env = dict(self.env, BIND_ADDR=url.removeprefix("http://"))
        with open(log, "ab") as f:
            return subprocess.Popen([str(self.binary), "serve"], env=env, stdout=f, stderr=subprocess.STDOUT)

    def restart(self, index):
        """Starts instance `index` (0-based) again on its port, after it exited; waits until ready."""
        self.procs[index] = self._spawn(index + 1, self.urls[index])
        self._wait_ready(self.procs[index], self.urls[index], self._log(index + 1), index + 1)

    def _wait_ready(self, proc, url, log, i):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                http_get(url + "/readyz")
                return
            except OSError:
                pass
            if proc.poll() is not None:
                print(_tail(log), flush=True)
                raise Fatal(f"server {i} exited during start-up")
            time.sleep(0.5)
        print(_tail(log), flush=True)
        raise Fatal(f"server {i} was not ready within 60 s (GET /readyz)")

    @property
    def url(self):
        return self.urls[0]

    @property
    def pids(self):
        return [p.pid for p in self.procs]

    def save_metrics(self, name="metrics"):
        """Each instance's /metrics into <name>.txt, <name>-2.txt, ...; the first one's text."""
        first = ""
        for i, url in enumerate(self.urls, start=1):
            try:
                text = http_get(url + "/metrics")
            except OSError:
                continue
            (self.out_dir / (f"{name}.txt" if i == 1 else f"{name}-{i}.txt")).write_text(text, encoding="utf-8")
            first = text if i == 1 else first
        return first

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []


def _tail(path, n=30):
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-n:])
