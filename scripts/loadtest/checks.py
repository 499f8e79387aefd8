"""After a run: the scenario's own measurements of the data (counts such as "exactly 50 seats
HELD"), and `concert-reservation verify`, the single statement of every invariant of the data
model. Nothing here restates verify's SQL."""

import subprocess
from dataclasses import dataclass

from loadtest.util import read_json, read_text, rel, say


@dataclass
class Measure:
    """A count the scenario expects (or, with expected None, records for information)."""

    check: str
    expected: object
    sql: str
    params: tuple = ()


def run_measures(db, measures):
    """Runs each measure; returns the rows the report shows (the JSON's `sql_checks`)."""
    rows = []
    with db.connect() as conn:
        for m in measures:
            try:
                row = conn.execute(m.sql, m.params or None).fetchone()
                actual = str(row[0]) if row else ""
            except Exception as err:  # noqa: BLE001  a failed query is a failed check, reported
                actual = f"error: {err}".splitlines()[0]
            expected = None if m.expected is None else str(m.expected)
            rows.append({"check": m.check, "expected": expected, "actual": actual,
                         "passed": None if expected is None else actual == expected, "sql": " ".join(m.sql.split())})
    failed = [r for r in rows if r["passed"] is False]
    for r in failed:
        say(f"check FAILED: {r['check']}: expected {r['expected']}, got {r['actual']}")
    say(f"data checks: {'all as expected' if not failed else f'{len(failed)} FAILED'}")
    return rows


def run_verify(binary, env, out_dir):
    """`concert-reservation verify --json verify.json` on the run's database; writes verify.status
    (its exit status, or "not available" for a build without the subcommand)."""
    status = out_dir / "verify.status"
    help_rc = subprocess.call([str(binary), "verify", "--help"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if help_rc != 0:
        say("verify: this build has no `concert-reservation verify`; skipped")
        status.write_text("not available\n")
        return
    say(f"verify: concert-reservation verify --json {rel(out_dir / 'verify.json')}")
    with open(out_dir / "verify.log", "wb") as log:
        rc = subprocess.call([str(binary), "verify", "--json", str(out_dir / "verify.json")], env=env,
                             stdout=log, stderr=subprocess.STDOUT)
    status.write_text(f"{rc}\n")
    if rc == 0:
        say("verify: all checks passed")
    else:
        say(f"verify FAILED (exit {rc}; {rel(out_dir / 'verify.log')}):")
        print("\n".join("  " + line for line in read_text(out_dir / "verify.log").splitlines()[-20:]), flush=True)


def verify_result(run_dir):
    """What the report says about verify: status, passed (None when not run), its JSON."""
    status = read_text(run_dir / "verify.status").strip()
    if not status:
        return {"status": "not run", "passed": None, "result": None}
    if status == "not available":
        return {"status": "not available", "passed": None, "result": None}
    data = read_json(run_dir / "verify.json")
    passed = status == "0" and (data is None or data.get("passed") is not False)
    return {"status": "passed" if passed else f"FAILED (exit {status})", "passed": passed, "result": data,
            "log_tail": read_text(run_dir / "verify.log").splitlines()[-20:]}
