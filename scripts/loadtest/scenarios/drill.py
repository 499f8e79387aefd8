"""Drills (`scripts/drill <name>`, docs/drills/): a moderate journey load through the queue on two
instances, one fault injected at a known moment and restored (loadtest/faults.py), the alert
rules evaluated by a real Prometheus meanwhile (loadtest/alerts.py). The report says what fans
saw second by second (answers by code, from k6's console lines), the time to the first error and
to recovery (failures back under 0.5 %), which alerts were pending or firing when, the data
afterwards and verify."""

import os
import threading
import time

from loadtest.alerts import Prometheus
from loadtest.checks import Measure
from loadtest.faults import FAULTS, RECOVERY, Events
from loadtest.fmt import counts, ms, num, pct
from loadtest.report import Report, Table, resources_of
from loadtest.scenarios.base import busy_k6, kv_table, section
from loadtest.scenarios.journeys import REQUESTS_PER_JOURNEY, JourneyScenario, journey_stats
from loadtest.util import PROJECT_ROOT, Fatal, positive_int, read_json, read_text, write_json

ANSWERS_OK = ("OK", "SEAT_UNAVAILABLE", "SOLD_OUT")  # answers a healthy system gives
RECOVERED_BELOW = 0.005  # failure rate of every later 5 s window
HOLD_TTL_SECONDS = "30"


class Drill(JourneyScenario):
    name = "drill"
    script = "k6-graphql/drill.js"
    takes = ("fault", "rate")
    console_log = True

    def configure(self):
        name = self.opts.get("fault")
        if name not in FAULTS:
            raise Fatal(f"scripts/drill takes one of: {', '.join(FAULTS)}")
        self.fault = FAULTS[name]()
        for attr, env in (("at_s", "DRILL_AT_SECONDS"), ("length_s", "DRILL_LENGTH_SECONDS"), ("after_s", "DRILL_AFTER_SECONDS")):
            if os.environ.get(env):
                setattr(self.fault, attr, int(positive_int(env, int(os.environ[env]) + 1)) - 1)
        self.title = f"Drill: {self.fault.title}"
        if not self.opts.get("instances") and not os.environ.get("LOAD_INSTANCES"):
            self.opts["instances"] = "2"
        rate = positive_int("--rate", self.opts.get("rate") or 120)
        duration = self.fault.load_seconds
        self.k6_env = {"RATE": rate, "DURATION": duration, "UNPAID_SHARE": "0.1"}
        self.journey_setup(rate * (duration + 2) // REQUESTS_PER_JOURNEY + 10, metered=True)
        self.k6_env.update(self.fault.k6_env)
        self.server_env.update(HOLD_TTL_SECONDS=HOLD_TTL_SECONDS)
        self.server_env.update(self.fault.server_env)
        self.events = Events()
        self.prometheus = None

    @property
    def report_name(self):
        return str(PROJECT_ROOT / "docs" / "drills" / self.fault.name)

    def setup(self, run):
        self.server_env.update(self.fault.setup(run))

    def servers_started(self, run):
        self.fault.started(run)
        urls = list(run.servers.urls) + [u for w in [getattr(self.fault, "proc", None)] if w for u in w.urls]
        self.prometheus = Prometheus(run.out_dir, urls)
        self.prometheus.start()

    def during(self, run):
        return FaultTimeline(run, self.fault, self.events, self.prometheus)

    def teardown(self, run):
        if self.prometheus:
            self.prometheus.stop()
        self.fault.teardown(run)

    def measures(self, run):
        backstop_due = f"{int(HOLD_TTL_SECONDS) + 30 + 15} seconds"
        return super().measures(run) + [
            Measure("payments whose reservation is not CONFIRMED (a payment half-done)", 0,
                    "select count(*) from payments p join reservations r on r.id = p.reservation_id where r.status <> 'CONFIRMED'"),
            Measure("holds still HELD long after they expired (not freed by the consumer or the backstop)", 0,
                    f"select count(*) from reservations where status = 'HELD' and expires_at < now() - interval '{backstop_due}'"),
            Measure("outbox events never published after the drain", 0, "select count(*) from outbox where published_at is null"),
        ]

    def report(self, ctx):
        return drill_report(self, ctx)


class FaultTimeline(threading.Thread):
    """Injects the fault at_s after the load started and restores it length_s later (always,
    even when injecting failed); stop() collects the alerts and writes drill-events.json."""

    def __init__(self, run, fault, events, prometheus):
        super().__init__(daemon=True)
        self.run_, self.fault, self.events, self.prometheus = run, fault, events, prometheus
        self.started_at = time.time()
        events.add("load started", self.started_at)
        self.start()

    def run(self):
        time.sleep(self.fault.at_s)
        self.events.add("fault injected")
        try:
            self.fault.inject(self.run_, self.events)
            time.sleep(self.fault.length_s)
        except Exception as err:  # noqa: BLE001  recorded; the component is restored anyway
            self.events.add(f"injecting failed: {err}")
        self.events.add("restoring")
        try:
            self.fault.restore(self.run_, self.events)
        except Exception as err:  # noqa: BLE001
            self.events.add(f"restoring failed: {err}")

    def stop(self):
        self.join(timeout=300)
        ended = time.time()
        self.events.add("load ended", ended)
        out = self.run_.out_dir
        write_json(out / "drill-events.json", self.events.as_json())
        try:
            write_json(out / "drill-alerts.json", self.prometheus.alerts(self.started_at, ended + 5))
        except (OSError, KeyError, ValueError) as err:
            write_json(out / "drill-alerts.json", {"error": str(err)})


def read_answers(path):
    """k6's console lines `answer <sent ms> <instance> <op> <code> <latency ms>` -> dicts."""
    out = []
    for line in read_text(path).splitlines():
        i = line.find('msg="answer ')
        if i < 0:
            continue
        parts = line[i + 5:].split('"', 1)[0].split()
        if len(parts) == 6:
            out.append({"t": int(parts[1]) / 1000, "instance": int(parts[2]), "op": parts[3], "code": parts[4],
                        "ms": int(parts[5])})
    return out


def per_second(answers, t0):
    """Second (since t0) -> {answers, codes: {code: n}, failed, p95_ms}."""
    by = {}
    for a in answers:
        s = int(a["t"] - t0)
        d = by.setdefault(s, {"answers": 0, "codes": {}, "failed": 0, "lat": []})
        d["answers"] += 1
        d["codes"][a["code"]] = d["codes"].get(a["code"], 0) + 1
        d["failed"] += a["code"] not in ANSWERS_OK
        d["lat"].append(a["ms"])
    for d in by.values():
        lat = sorted(d.pop("lat"))
        d["p95_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.95))]
    return dict(sorted(by.items()))


def first_error_after(answers, t):
    return next((a["t"] for a in sorted(answers, key=lambda a: a["t"]) if a["t"] >= t and a["code"] not in ANSWERS_OK), None)


def recovered_second(seconds, from_s, window=5):
    """The first second ≥ from_s after which every `window` s window has failures < 0.5 %."""
    keys = sorted(seconds)
    last = keys[-1] if keys else from_s

    def rate(a):
        ds = [seconds[s] for s in range(a, a + window) if s in seconds]
        n = sum(d["answers"] for d in ds)
        return sum(d["failed"] for d in ds) / n if n else 0.0
    bad = [a for a in range(from_s, max(from_s, last - window + 2)) if rate(a) >= RECOVERED_BELOW]
    return (bad[-1] + 1) if bad else from_s


def timeline(run_dir, duration_s):
    """What the drill measured, from its run directory. Answers to requests sent after the load's
    `duration_s` are left out: journeys still running then are cut off by k6 (status 0 at once,
    in a tight loop), which no server did."""
    ev = read_json(run_dir / "drill-events.json", {}) or {}
    events, facts = ev.get("events", []), dict(ev.get("facts", {}))
    first = lambda what: next((e["t"] for e in events if e["what"] == what), None)
    t0, injected, back = first("load started"), first("fault injected"), first("component back")
    restoring = first("restoring")
    answers = read_answers(run_dir / "console.log")
    if t0:
        late = [a for a in answers if a["t"] >= t0 + duration_s + 2]
        answers = [a for a in answers if a["t"] < t0 + duration_s + 2]
        facts["answers_after_the_load_left_out"] = len(late)
    seconds = per_second(answers, t0) if t0 else {}
    out = {"t0": t0, "events": [dict(e, s=round(e["t"] - t0, 2)) for e in events] if t0 else [], "facts": facts,
           "seconds": seconds, "answers": len(answers)}
    if t0 and injected:
        err = first_error_after(answers, injected)
        rec = recovered_second(seconds, int(injected - t0))
        out.update(injected_s=round(injected - t0, 2), back_s=round(back - t0, 2) if back else None,
                   first_error_after_injection_s=round(err - injected, 2) if err else None, recovered_s=rec,
                   errors_in_drill=sum(d["failed"] for d in seconds.values()))
        if back:
            facts["recovered_after_back_s"] = max(0.0, round(rec - (back - t0), 2))
        during = [a for a in answers if injected <= a["t"] < (restoring or injected)]
        if during:
            failed = [a for a in during if a["code"] not in ANSWERS_OK]
            facts["failed_share_during_fault"] = round(len(failed) / len(during), 5)
            facts["failed_during_fault_by_instance"] = {f"instance {i + 1}": sum(a["instance"] == i for a in failed)
                                                        for i in sorted({a["instance"] for a in answers})}
    alerts = read_json(run_dir / "drill-alerts.json", []) or []
    out["alerts"] = [dict(a, from_s=round(a["from"] - t0, 1), to_s=round(a["to"] - t0, 1)) for a in alerts] \
        if isinstance(alerts, list) and t0 else alerts
    return out


def drill_report(scenario, ctx):
    fault = scenario.fault
    tl = timeline(ctx.run_dir, ctx.env_int("DURATION", 0))
    js = journey_stats(ctx.summary)
    goals = []
    for label, fact, limit in [RECOVERY] + ([fault.target] if fault.target else []):
        measured = tl["facts"].get(fact)
        goals.append((label, "not measured" if measured is None else f"{measured}" + (" s" if fact.endswith("_s") else ""),
                      measured is not None and measured <= limit))
    f = tl["facts"]
    if "waiting_order_intact" in f:
        whole = f["waiting_kept"] + f["waiting_admitted_by_then"] == f["waiting_before"]
        goals.append(("every fan waiting before the fault is still waiting, in the same order, or was admitted",
                      f"of {f['waiting_before']:,}: {f['waiting_kept']:,} still waiting (in order: {f['waiting_order_intact']}), "
                      f"{f['waiting_admitted_by_then']:,} admitted", whole and f["waiting_order_intact"]))
    res = resources_of(ctx.samples, busy_k6)
    data = {"fault": {"name": fault.name, "what": fault.what, "at_s": fault.at_s, "length_s": fault.length_s},
            "timeline": tl, "results": js, "resources": res}
    return Report(
        title=scenario.title, data=data, goals=goals, resources=res, judge_plan=False,
        load_model=(f"k6 `constant-arrival-rate` of journeys ({ctx.env_int('RATE', 0):,} req/s ÷ 8 requests a journey) for "
                    f"{ctx.env_int('DURATION', 0)} s over the instances, through the waiting queue; "
                    f"{pct(float(ctx.k6_env.get('UNPAID_SHARE', 0)), 0)} of journeys leave their hold to expire "
                    f"(holds of {ctx.server_env.get('HOLD_TTL_SECONDS')} s)"),
        run_rows=[("fault", f"{fault.what}; injected {tl.get('injected_s')} s after the load started")],
        headline=headline(fault, tl),
        sections=[section("What happened", events_table(tl), facts_table(tl)),
                  section("What fans saw", answers_table(tl), journeys_table(js)),
                  section("Alert rules (grafana/alerts.yml, evaluated every second by Prometheus)", alerts_table(tl))])


def headline(fault, tl):
    if tl.get("injected_s") is None:
        return f"{fault.title}: the fault was not injected (see the events)."
    first = tl.get("first_error_after_injection_s")
    return (f"{fault.title}. First failed answer {num(first, 2, ' s') if first is not None else 'never'} after the "
            f"injection; {tl['errors_in_drill']:,} failed answers of {tl['answers']:,}; failures under 0.5 % again from "
            f"second {tl['recovered_s']} ({num(tl['facts'].get('recovered_after_back_s'), 1, ' s')} after the component "
            f"was back); alerts: {', '.join(sorted({a['alert'] + ' ' + a['state'] for a in tl['alerts']})) or 'none'}.")


def events_table(tl):
    return Table(["second", "event"], [[f"{e['s']:.2f}", e["what"]] for e in tl["events"]], "Timeline (seconds since the load started):")


def facts_table(tl):
    rows = [[k.replace("_", " "), str(v)] for k, v in sorted(tl["facts"].items())]
    rows += [["first failed answer after the injection", num(tl.get("first_error_after_injection_s"), 2, " s")],
             ["failures < 0.5 % in every later 5 s window from second", str(tl.get("recovered_s"))]]
    return kv_table(rows, "Measured:")


def answers_table(tl):
    """Per second around the fault (5 s before to 10 s after recovery), per 10 s elsewhere."""
    secs = tl["seconds"]
    lo = int(tl.get("injected_s") or 0) - 5
    hi = max(int(tl.get("back_s") or lo), int(tl.get("recovered_s") or lo)) + 10
    rows, bucket = [], None
    for s in sorted(secs):
        if lo <= s <= hi:
            bucket = None
            rows.append([str(s), secs[s]])
            continue
        if bucket != s // 10:
            bucket, first = s // 10, s
            rows.append([str(s), {"answers": 0, "codes": {}, "failed": 0, "p95_ms": None}])
        rows[-1][0] = f"{first}–{s}" if s != first else str(s)
        agg = rows[-1][1]
        agg["answers"] += secs[s]["answers"]
        agg["failed"] += secs[s]["failed"]
        for c, n in secs[s]["codes"].items():
            agg["codes"][c] = agg["codes"].get(c, 0) + n
    body = [[s, f"{d['answers']:,}", pct(d["failed"] / d["answers"] if d["answers"] else None, 1), ms(d["p95_ms"]),
             counts({c: n for c, n in d["codes"].items() if c != "OK"}, code=True) or "–"] for s, d in rows]
    return Table(["second", "answers", "failed", "P95 (that second)", "answers other than OK, by code"], body,
                 "Answers by the second they were sent (failed: any code but OK, SEAT_UNAVAILABLE, SOLD_OUT):")


def journeys_table(js):
    rows = [["journeys by outcome", ", ".join(f"{k} {v:,}" for k, v in js["outcomes"].items() if v) or "none"],
            ["errors by code (whole run)", counts(js["errors_by_code"], code=True)],
            ["payments retried with the same key after a lost answer", f"{js['pay_retries']:,}"],
            ["fan's page (`me`) disagreeing with the receipt", f"{js['me_mismatch']:,}"]]
    return kv_table(rows)


def alerts_table(tl):
    alerts = tl["alerts"]
    if not isinstance(alerts, list):
        return kv_table([["Prometheus", str(alerts)]])
    rows = [[a["alert"], a["state"], f"{a['from_s']:.0f}", f"{a['to_s']:.0f}", a["labels"].get("instance", "")]
            for a in alerts]
    return Table(["alert", "state", "from (s)", "to (s)", "instance"], rows or [["none", "", "", "", ""]],
                 "Rules pending (condition true, waiting out its `for:`) or firing, by second since the load started:")
