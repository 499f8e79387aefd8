"""`scripts/drill summary`: the results table of docs/drills/README.md, written from the drills'
JSON reports (docs/drills/NAME.json) between its two marker lines, so the overview always says
what the reports say."""

import json
from pathlib import Path

from loadtest.fmt import n0
from loadtest.util import PROJECT_ROOT, Fatal

DRILLS = PROJECT_ROOT / "docs" / "drills"
BEGIN = "<!-- drill results: written by `scripts/drill summary` from the reports -->"
END = "<!-- end of drill results -->"

HALF_DONE = "payments whose reservation is not CONFIRMED"
STUCK = "holds still HELD long after they expired"
UNPUBLISHED = "outbox events never published"


def data_check(report, prefix):
    """The count a data check of the report measured (None when it has none of that kind)."""
    for check in report.get("sql_checks", []):
        if check["check"].startswith(prefix):
            return check["actual"]
    return None


def seconds(value):
    return "never" if value is None else f"{value:.2f} s"


def row(name, report):
    tl = report["timeline"]
    firing = sorted({a["alert"] for a in tl.get("alerts", []) if a["state"] == "firing"})
    own = [g for g in report.get("goals", []) if not g["goal"].startswith("requests succeed again")]
    back = tl.get("back_s")
    recovered = tl.get("recovered_s")
    after_back = "—" if back is None or recovered is None else f"{max(0.0, recovered - back):.1f} s"
    data = [data_check(report, p) for p in (HALF_DONE, STUCK, UNPUBLISHED)]
    return "| " + " | ".join([
        f"[{name}]({name}.md)",
        "PASS" if report.get("passed") else "**FAIL**",
        f"{n0(tl['errors_in_drill'])} of {n0(tl['answers'])}",
        seconds(tl.get("first_error_after_injection_s")),
        after_back,
        "; ".join(f"{g['goal']}: {g['measured']}" for g in own) or "—",
        " / ".join("?" if v is None else str(v) for v in data),
        report.get("verify", {}).get("status", "?"),
        ", ".join(firing) or "none",
        f"`{report['source']['commit']}`",
    ]) + " |"


def table(reports):
    head = ("| drill | result | failed answers | first failed answer after the injection | "
            "recovered after the component was back | the drill's own target | half-done payments / "
            "holds left past due / events unpublished | verify | alerts that fired | commit |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    return head + "\n".join(row(name, report) for name, report in reports) + "\n"


def reports(names):
    found = []
    for name in names:
        path = DRILLS / f"{name}.json"
        if path.exists():
            found.append((name, json.loads(path.read_text())))
    return found


def write(readme, text):
    page = readme.read_text()
    if BEGIN not in page or END not in page:
        raise Fatal(f"{readme} has no results block ({BEGIN} ... {END})")
    before, rest = page.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    readme.write_text(f"{before}{BEGIN}\n\n{text}\n{END}{after}")


def run(names):
    found = reports(names)
    if not found:
        raise Fatal(f"no drill reports in {DRILLS}")
    write(DRILLS / "README.md", table(found))
    missing = [n for n in names if n not in dict(found)]
    print(f"docs/drills/README.md: {len(found)} drills" + (f"; no report yet: {', '.join(missing)}" if missing else ""))
    return 0
