"""The project's alert rules (grafana/alerts.yml) evaluated by a real Prometheus while a drill
runs: it scrapes every instance each second and evaluates the rules each second, and afterwards
its ALERTS series says which rule was pending or firing when. Prometheus comes from Debian's
`prometheus` package (installed when missing and the runner is root)."""

import json
import os
import shutil
import subprocess
import time
import urllib.parse

from loadtest.relay import free_tcp_port
from loadtest.server import http_get
from loadtest.util import PROJECT_ROOT, Fatal, rel, say

RULES = PROJECT_ROOT / "grafana" / "alerts.yml"


def prometheus_binary():
    found = shutil.which("prometheus")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        say("installing Prometheus (Debian package prometheus) to evaluate the alert rules")
        subprocess.call(["apt-get", "install", "-y", "-qq", "prometheus"], stdout=subprocess.DEVNULL)
    found = shutil.which("prometheus")
    if not found:
        raise Fatal("prometheus is needed to evaluate the alert rules (Debian: apt-get install prometheus)")
    return found


class Prometheus:
    """A Prometheus of the run's own (data in <run>/prometheus/), job `concert-reservation`."""

    def __init__(self, out_dir, urls):
        self.dir = out_dir / "prometheus"
        self.dir.mkdir(exist_ok=True)
        self.port = free_tcp_port()
        targets = [u.removeprefix("http://") for u in urls]
        self.targets = len(targets)
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
                  "rule_files": [str(RULES)],
                  "scrape_configs": [{"job_name": "concert-reservation", "static_configs": [{"targets": targets}]}]}
        (self.dir / "prometheus.yml").write_text(json.dumps(config, indent=1))  # JSON is YAML
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        args = [prometheus_binary(), f"--config.file={self.dir / 'prometheus.yml'}", f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        say(f"starting Prometheus on {self.url} with {rel(RULES)} (log: {rel(self.dir / 'prometheus.log')})")
        with open(self.dir / "prometheus.log", "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.targets_up() == self.targets:
                return
            time.sleep(0.3)
        raise Fatal(f"Prometheus did not scrape all {self.targets} instances within 30 s")

    def targets_up(self):
        """How many instances the last scrape reached (-1 while Prometheus is not answering)."""
        try:
            q = urllib.parse.urlencode({"query": 'count(up{job="concert-reservation"} == 1)'})
            result = json.loads(http_get(f"{self.url}/api/v1/query?{q}"))["data"]["result"]
            return int(result[0]["value"][1]) if result else 0
        except (OSError, KeyError, ValueError):
            return -1

    def query_range(self, query, start, end):
        q = urllib.parse.urlencode({"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "1s"})
        return json.loads(http_get(f"{self.url}/api/v1/query_range?{q}", timeout=30))["data"]["result"]

    def alerts(self, start, end):
        """Each alert that was pending or firing: [{alert, state, labels, from, to}] (Unix seconds,
        consecutive samples joined), ordered by when it began."""
        out = []
        for series in self.query_range("ALERTS", start, end):
            labels = dict(series["metric"])
            name, state = labels.pop("alertname"), labels.pop("alertstate")
            labels.pop("__name__", None)
            for a, b in spans([float(t) for t, _ in series["values"]]):
                out.append({"alert": name, "state": state, "labels": labels, "from": a, "to": b})
        return sorted(out, key=lambda x: (x["from"], x["alert"]))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def spans(times, gap=1.5):
    """Sorted sample times -> [(first, last)] of runs with no gap longer than `gap` seconds."""
    out = []
    for t in sorted(times):
        if out and t - out[-1][1] <= gap:
            out[-1][1] = t
        else:
            out.append([t, t])
    return [(a, b) for a, b in out]
