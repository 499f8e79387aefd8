"""Paths, messages and the small parsers every module uses."""

import datetime
import json
import os
import re
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RUN_DIR = PROJECT_ROOT / ".run"
RESULTS_DIR = PROJECT_ROOT / "docs" / "results"
DEV_SECRET = "dev-secret-change-me"


class Fatal(Exception):
    """The run cannot go on: printed as `error: ...`, exit status 1."""


class UsageError(Fatal):
    """A bad command line: exit status 2."""


def say(msg):
    print(f"==> {msg}", flush=True)


def rel(path):
    """A path relative to the project root when it is inside it."""
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def positive_int(name, value):
    if not re.fullmatch(r"[1-9][0-9]*", str(value)):
        raise Fatal(f"{name} must be a positive integer")
    return int(value)


def duration_seconds(value):
    """Seconds of --duration: 300, 300s, 5m, 1h."""
    m = re.fullmatch(r"([0-9]+)([smh]?)", str(value))
    if not m:
        raise Fatal("--duration must look like 300, 300s, 5m or 1h")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def env_int(name, default):
    """A positive integer from the environment (the scenarios' knobs), or its default."""
    return positive_int(name, os.environ.get(name) or default)


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def seconds_between(started, finished):
    fmt_ = "%Y-%m-%dT%H:%M:%SZ"
    try:
        a = datetime.datetime.strptime(started, fmt_)
        return (datetime.datetime.strptime(finished, fmt_) - a).total_seconds()
    except (TypeError, ValueError):
        return None


def read_text(path, default=""):
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return default


def read_json(path, default=None):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def write_json(path, data):
    Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def read_tsv(path):
    """Rows of a TSV with a header line; numbers as floats, empty cells as None."""
    lines = [line for line in read_text(path).splitlines() if line.strip()]
    if not lines:
        return []
    header = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        cells = line.split("\t")
        if len(cells) == len(header):
            rows.append({k: _number(v) for k, v in zip(header, cells)})
    return rows


def _number(v):
    try:
        return float(v)
    except ValueError:
        return None


def warn(msg):
    print(f"warning: {msg}", file=sys.stderr, flush=True)
