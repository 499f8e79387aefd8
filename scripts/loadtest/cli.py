"""The command line of scripts/load (usage.txt)."""

import signal
import sys
from pathlib import Path

from loadtest import report, smoke
from loadtest.runner import Run
from loadtest.scenarios import SCENARIOS
from loadtest.util import Fatal, UsageError, stamp

OPTIONS = ("users", "rate", "duration", "holds", "ttl", "subscribers", "step", "max", "poll", "profile", "instances")
USAGE = (Path(__file__).parent / "usage.txt").read_text(encoding="utf-8")


def parse_options(args):
    """--name value / --name=value of OPTIONS -> {name: value}."""
    opts = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-h", "--help"):
            print(USAGE, end="")
            sys.exit(0)
        name, sep, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or name not in OPTIONS:
            print(USAGE, end="", file=sys.stderr)
            raise Fatal(f"unknown option: {arg}")
        if not sep:
            if i + 1 >= len(args):
                raise Fatal(f"{arg} needs a value")
            i += 1
            value = args[i]
        opts[name] = value
        i += 1
    return opts


def rerender(args):
    """`report SCENARIO --run-dir DIR --out PATH [--command C] [--k6-exit N]`: the report again."""
    import argparse
    p = argparse.ArgumentParser(prog="scripts/load report")
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--run-dir", required=True)
    p.add_argument("--out", required=True, help="path without extension")
    p.add_argument("--command", default="")
    p.add_argument("--k6-exit", type=int, default=0)
    p.add_argument("--started", default="")
    p.add_argument("--finished", default="")
    p.add_argument("--k6-version", default="")
    a = p.parse_args(args)
    ctx = report.Context(Path(a.run_dir), Path(a.out).resolve(), a.command or f"scripts/load {a.scenario}",
                         a.k6_exit, a.started, a.finished, a.k6_version)
    scenario = SCENARIOS[a.scenario].__new__(SCENARIOS[a.scenario])
    return 0 if report.render(ctx, a.scenario, scenario.report(ctx)) else 1


def self_check():
    """`check`: the package's unit tests and its function-length limit (for CI)."""
    import unittest

    from loadtest import check_function_length, tests
    result = unittest.TextTestRunner(verbosity=1).run(unittest.defaultTestLoader.loadTestsFromModule(tests))
    return 0 if result.wasSuccessful() and check_function_length.main() == 0 else 1


def dispatch(args):
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="", file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name == "report":
        return rerender(rest)
    if name == "check":
        return self_check()
    if name == "drill":
        return drill(rest)
    opts = parse_options(rest)
    if name == "smoke":
        if set(opts) - {"profile"}:
            raise Fatal('smoke takes --profile only (SMOKE_ONLY="name ..." runs some scenarios)')
        return smoke.run(opts.get("profile"))
    if name not in SCENARIOS:
        print(USAGE, end="", file=sys.stderr)
        raise UsageError(f"unknown scenario: {name} (known: {', '.join(SCENARIOS)}, smoke)")
    run_stamp = stamp()
    return Run(SCENARIOS[name](opts, run_stamp), opts, run_stamp).execute()


def drill(args):
    """`drill NAME|all [--rate R] [--profile P]` (scripts/drill): one drill, or every drill in turn
    (the exit status of the worst), then the results table of docs/drills/README.md;
    `drill summary` writes only the table."""
    from loadtest import drill_summary
    from loadtest.faults import FAULTS
    if not args or args[0].startswith("-"):
        print(USAGE, end="", file=sys.stderr)
        raise UsageError(f"scripts/drill takes a drill: {', '.join(FAULTS)}, all or summary")
    if args[0] == "summary":
        return drill_summary.run(list(FAULTS))
    names = list(FAULTS) if args[0] == "all" else [args[0]]
    worst = 0
    for name in names:
        opts = dict(parse_options(args[1:]), fault=name)
        run_stamp = stamp()
        worst = max(worst, Run(SCENARIOS["drill"](opts, run_stamp), opts, run_stamp).execute())
    drill_summary.run(list(FAULTS))
    return worst


def main(args):
    # A TERM (timeout, CI) unwinds like an exception, so servers and k6 are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return dispatch(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Fatal as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
