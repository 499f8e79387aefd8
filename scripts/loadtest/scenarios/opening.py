"""Scheduled opening (issue 15): an organiser sets up the sale through the API (concert,
performance with a pre-queue, seat map, the capacity planner's queue settings); N fans enter the
queue during the pre-queue, the server shuffles them at the opening, and they race for the seats
as the seat stampede's fans do (k6-graphql/seat-stampede.js with OPENING=1). Measures: the fans
in line before the opening, that nobody was ACTIVE before it, when the last seat went, the fans
admitted before that and those told SOLD_OUT, waits by place in line, exactly the seats' count of
holds; and the capacity planner's prediction for the run's own inputs against the measured sale,
within ±20 % per quantity.
Env: SEATS (50), OPENS_IN_SECONDS (30: the pre-queue's length), BOOKING_CAPACITY (the ceiling
report's API holds/s), PLAN_SECONDS_TO_BUY and PLAN_SLOWEST_SECONDS_TO_BUY (the seat-stampede
report's ACTIVE -> final answer P50 and P95), PLAN_CONVERSION (1), and the stampede's MODE,
MAX_ATTEMPTS, POLL."""

import os
import subprocess

from loadtest.fmt import num, secs
from loadtest.metrics import server_latency
from loadtest.report import Report, Table, resources_of
from loadtest.scenarios.base import admission_over_time, busy_k6, kv_table, product_queue, section
from loadtest.scenarios.seat_stampede import (ORDER, SOLD_OUT_WITHIN_S, SeatStampede, goals as stampede_goals,
                                              labels as stampede_labels, load_model_data, op_table, result_rows,
                                              results, server_metrics, server_rows)
from loadtest.util import RESULTS_DIR, duration_seconds, positive_int, read_json, read_text, write_json

# A prediction passes when the measured outcome is within this share of it (issue 15).
TOLERANCE = 0.2
# The planner's quantities the report compares: (key in its output, label, unit digits).
PREDICTED = (("admit_per_second", "admission rate (fans/s)", 1),
             ("sold_out_after_seconds", "last seat sold, seconds after the opening", 2),
             ("fans_admitted", "fans admitted before the last seat went", 0),
             ("fans_told_sold_out", "fans told SOLD_OUT while waiting", 0))
POSITIONS = (1, 10, 100, 1000, 10000, 100000)
WAITING_VIA = ("enterQueue", "queueStatus")


class Opening(SeatStampede):
    name = "opening"
    title = "Load test: scheduled opening (issue 15)"
    script = "k6-graphql/seat-stampede.js"
    takes = ("users", "duration")
    queue_concert = 1      # the organiser's concert: the first in a freshly seeded database
    console_log = True     # the fans' records and the opening's lines

    def configure(self):
        users = positive_int("--users", self.opts.get("users") or 10000)
        seats = positive_int("SEATS", os.environ.get("SEATS") or 50)
        max_s = positive_int("--duration", duration_seconds(self.opts.get("duration") or 300))
        opens_in = positive_int("OPENS_IN_SECONDS", os.environ.get("OPENS_IN_SECONDS") or 30)
        self.expected = min(users, seats)
        self.priors = plan_priors(os.environ, RESULTS_DIR)
        self.k6_env = {"USERS": users, "SEATS": seats, "MAX_SECONDS": max_s, "OPENING": 1, "OPENS_IN_SECONDS": opens_in,
                       **{name: value for name, (value, _) in self.priors.items()}}
        # Fans only: the organiser creates the concert, its performance and its seats (k6's setup()).
        self.seed_args = ["--concerts", "0", "--users", str(users), "--points", "1000000"]
        # The queue as the product ships it; the organiser sets the concert's admission rate and
        # active cap from the capacity plan before the opening (setQueueSettings). Holds outlive
        # the run, so the checks after it still see exactly the held seats.
        self.server_env = product_queue(HOLD_TTL_SECONDS=900)

    def setup(self, run):
        write_json(run.out_dir / "plan-priors.json", {k: {"value": v, "from": src} for k, (v, src) in self.priors.items()})

    def teardown(self, run):
        """The capacity plan for the run's measured inputs, by the planner itself
        (`concert-reservation plan`), into plan-check.json."""
        try:
            check = plan_check(run.binary, run.out_dir)
        except (OSError, ValueError, subprocess.SubprocessError) as err:
            check = {"error": str(err)}
        write_json(run.out_dir / "plan-check.json", check)

    def report(self, ctx):
        s = ctx.summary
        users, seats = ctx.env_int("USERS", 0), ctx.env_int("SEATS", 50)
        expected = min(users, seats)
        r = results(s, SOLD_OUT_WITHIN_S * ctx.scale)
        server_latency(r["per_op"], ctx.prom)
        sale = read_sale(ctx.run_dir / "console.log")
        m = measure_opening(sale["opening"], sale["fans"])
        server = server_metrics(ctx.prom, ctx.pg)
        server["admission"] = admission_over_time(ctx.samples)
        res = resources_of(ctx.samples, busy_k6)
        check = read_json(ctx.run_dir / "plan-check.json") or {"error": "not computed (no plan-check.json)"}
        priors = read_json(ctx.run_dir / "plan-priors.json") or {}
        comparison = compare(check, sale["opening"], m)
        why = reasons(m, server, ctx.samples, sale["opening"])
        data = {"load_model": load_model_data(ctx, users, seats, expected), "opening": m, "sale": sale["opening"],
                "queue_opening": sale["queue_opening"], "plan_priors": priors, "plan_check": check, "plan_comparison": comparison,
                "results": r, "server_metrics": server, "resources": res}
        return Report(
            title=self.title, data=data, load_model=load_model_text(ctx, users, sale["opening"]),
            goals=opening_goals(ctx, r, res, users, m, sale["queue_opening"], comparison),
            resources=res, resources_window="while k6 was busy", plan=s.judged(ORDER + ("opening_active_before_open",)),
            labels=labels(r, expected, m), headline=headline(users, seats, r, m, comparison),
            run_rows=[("admission", "the product's queue (adaptive admission), with the concert's admission rate and active "
                       "cap set by the organiser from the capacity plan before the opening: "
                       f"{num(sale['opening'].get('admit'), 1)} fans/s, at most {num(sale['opening'].get('cap'), 0)} ACTIVE"),
                      ("error accounting", "as in the seat stampede: SEAT_UNAVAILABLE and SOLD_OUT are answers, BUSY is "
                       "retried and counted apart, SALE_NOT_OPEN from enterQueue (before the pre-queue) is sent again "
                       "when it says")],
            sections=[section("The opening", kv_table(opening_rows(m, sale)), waits_table(m, sale["opening"])),
                      section("Capacity plan against the measured sale", plan_table(comparison, why), inputs_table(check),
                              priors_table(priors, sale["opening"])),
                      section("Results", kv_table(since_opening(result_rows(users, r))), op_table(r["per_op"])),
                      section("Server view", kv_table(server_rows(server)))])


def plan_priors(env, results_dir):
    """The planner's inputs known before the opening -> (value, where it came from); an
    environment variable of the same name overrides each."""
    ceiling = read_json(results_dir / "ceiling.json") or {}
    holds = ((ceiling.get("results") or {}).get("ceilings") or {}).get("api_holds")
    stampede = read_json(results_dir / "seat-stampede.json") or {}
    booking = (stampede.get("results") or {}).get("booking_seconds") or {}
    to_buy, slowest = booking.get("med"), booking.get("p(95)")
    found = {
        "BOOKING_CAPACITY": (round(holds, 1) if holds else 740.0,
                             "the ceiling report's API holds/s (docs/results/ceiling.json, " + (
                                 f"source `{(ceiling.get('source') or {}).get('commit', '?')}`)" if holds else "absent: 740)")),
        "PLAN_SECONDS_TO_BUY": (round(to_buy, 2) if to_buy else 60.0,
                                "the seat-stampede report's ACTIVE → final answer P50 (docs/results/seat-stampede.json)"
                                if to_buy else "the planner's default (no seat-stampede report)"),
        "PLAN_SLOWEST_SECONDS_TO_BUY": (round(max(slowest, to_buy), 2) if slowest and to_buy else 60.0,
                                        "the seat-stampede report's ACTIVE → final answer P95 (docs/results/seat-stampede.json)"
                                        if slowest and to_buy else "the planner's default (no seat-stampede report)"),
        "PLAN_CONVERSION": (1.0, "every fan of the script tries to buy until told nothing is left"),
    }
    for name in found:
        if env.get(name):
            found[name] = (float(env[name]), f"set by the caller ({name})")
    return found


def read_sale(path):
    """k6's console lines of an opening run: `opening k=v ...` (the sale and the plan set before it),
    `queue-opening k=v ...` (the server's queueOpening) and one `fan ...` record per fan."""
    out = {"opening": {}, "queue_opening": None, "fans": []}
    for line in read_text(path).splitlines():
        i = line.find('msg="')
        if i < 0:
            continue
        words = line[i + 5:].split('"', 1)[0].split()
        if not words:
            continue
        if words[0] == "opening":
            out["opening"] = {k: _value(v) for k, _, v in (w.partition("=") for w in words[1:])}
        elif words[0] == "queue-opening":
            out["queue_opening"] = {k: _value(v) for k, _, v in (w.partition("=") for w in words[1:])} or None
        elif words[0] == "fan" and len(words) == 10:
            out["fans"].append(fan_record(words[1:]))
    return out


def fan_record(words):
    user, enter_ms, enter_status, admitted_ms, active_ms, first_pos, hold_ms, outcome, via = (
        None if w == "-" else w for w in words)
    n = lambda v: None if v is None else float(v)  # noqa: E731
    return {"user": int(user), "enter_ms": n(enter_ms), "enter_status": enter_status, "admitted_ms": n(admitted_ms),
            "active_ms": n(active_ms), "first_position": None if first_pos is None else int(first_pos),
            "hold_ms": n(hold_ms), "outcome": outcome, "via": via}


def _value(v):
    if v == "-":
        return None
    try:
        return int(v) if v.lstrip("-").isdigit() else float(v)
    except ValueError:
        return v


def _after(ms, open_ms):
    return None if ms is None or open_ms is None else (ms - open_ms) / 1000


def measure_opening(opening, fans):
    """What the fans' records say about the opening (times in seconds after it)."""
    open_ms = opening.get("open_ms")
    admitted = sorted(f["admitted_ms"] for f in fans if f["admitted_ms"] is not None)
    seen = [f["active_ms"] for f in fans if f["active_ms"] is not None]
    holds = [f["hold_ms"] for f in fans if f["hold_ms"] is not None]
    last = max(holds) if holds else None
    buyers = [f for f in fans if f["hold_ms"] is not None and f["admitted_ms"] is not None]
    before_last = sum(1 for a in admitted if last is not None and a <= last)
    sold_out_s = _after(last, open_ms)
    early = [a for a in admitted + seen if open_ms is not None and a < open_ms]
    return {
        "fans": len(fans), "open_ms": open_ms,
        # In line before the opening: the server answered PREQUEUE (an answer read a moment after
        # the opening still says the fan entered before it).
        "entered_before_opening": sum(1 for f in fans if f["enter_status"] == "PREQUEUE"),
        "entered_last_s": _after(max((f["enter_ms"] for f in fans if f["enter_ms"] is not None), default=None), open_ms),
        "first_admitted_s": _after(admitted[0] if admitted else None, open_ms),
        "first_active_seen_s": _after(min(seen) if seen else None, open_ms),
        "active_before_opening": len(early), "admitted": len(admitted), "admitted_before_last_seat": before_last,
        "held": len(holds), "first_seat_s": _after(min(holds) if holds else None, open_ms), "last_seat_s": sold_out_s,
        "told_sold_out_waiting": sum(1 for f in fans if f["outcome"] == "sold_out" and f["via"] in WAITING_VIA),
        "told_sold_out": sum(1 for f in fans if f["outcome"] == "sold_out"),
        "admission_rate": admission_rate([a for a in admitted if last is not None and a <= last]),
        "seconds_to_buy_mean": _mean([(f["hold_ms"] - f["admitted_ms"]) / 1000 for f in buyers]),
        "seconds_to_buy_max": max(((f["hold_ms"] - f["admitted_ms"]) / 1000 for f in buyers), default=None),
        "seconds_to_buy_p95": _p95([(f["hold_ms"] - f["admitted_ms"]) / 1000 for f in buyers]),
        "seconds_seen_to_hold_mean": _mean([(f["hold_ms"] - f["active_ms"]) / 1000 for f in fans
                                            if f["hold_ms"] is not None and f["active_ms"] is not None]),
        "last_buyer_admitted_s": _after(max((f["admitted_ms"] for f in buyers), default=None), open_ms),
        "waits": [(p, _after(admitted[p - 1], open_ms)) for p in POSITIONS if p <= len(admitted)],
        "first_position_max": max((f["first_position"] for f in fans if f["first_position"] is not None), default=None),
    }


def admission_rate(admitted):
    """Fans admitted per second from sorted admission times (ms): those after the first tick's
    batch over the time from that tick to the last (a tick admits its batch at one instant, so
    the first batch ends no interval); None with fewer than two ticks."""
    if len(admitted) < 2 or admitted[-1] <= admitted[0]:
        return None
    first_batch = sum(1 for a in admitted if a == admitted[0])
    return (len(admitted) - first_batch) / ((admitted[-1] - admitted[0]) / 1000)


def _mean(values):
    return sum(values) / len(values) if values else None


def _p95(values):
    """The 95th percentile, nearest rank (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def planner_inputs(opening, m):
    """The planner's inputs for this run as measured -> (value, where it came from), or None when
    the run sold nothing (there is no time to buy or conversion to measure)."""
    if not m["held"] or m["seconds_to_buy_mean"] is None or not m["admitted_before_last_seat"]:
        return None
    return {
        "seats": (opening.get("seats"), "the run's seat map (SEATS)"),
        "fans": (m["entered_before_opening"], "fans in line at the opening (their enterQueue answered PREQUEUE)"),
        "seconds_to_buy": (round(max(m["seconds_to_buy_mean"], 0.001), 3),
                           "measured: admission (activeUntil − activeTtlSeconds) → successful hold, mean of the fans who got a seat"),
        "slowest_seconds_to_buy": (round(max(m["seconds_to_buy_p95"], m["seconds_to_buy_mean"], 0.001), 3),
                                   "measured: the same time, P95 (nearest rank) of the fans who got a seat"),
        "seats_per_purchase": (1, "each fan of the script holds one seat"),
        "conversion": (round(min(1.0, m["held"] / m["admitted_before_last_seat"]), 4),
                       "measured: fans who got a seat ÷ fans admitted before the last seat went"),
        "booking_capacity": (opening.get("capacity"), "as before the opening (BOOKING_CAPACITY)"),
    }


def parse_plan(text):
    """`concert-reservation plan`'s output -> {admit_per_second, active_cap, fans_admitted,
    sold_out_after_seconds (None: never), fans_told_sold_out, waits: [(position, seconds)]}."""
    out = {"waits": []}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "wait_at_position":
            out["waits"].append((int(words[1]), float(words[2])))
        elif len(words) >= 2:
            out[words[0]] = None if words[1] == "never" else _value(words[1])
    return out


def plan_check(binary, run_dir):
    sale = read_sale(run_dir / "console.log")
    m = measure_opening(sale["opening"], sale["fans"])
    inputs = planner_inputs(sale["opening"], m)
    if inputs is None:
        return {"error": "nothing was sold: no time to buy or conversion to feed the planner"}
    args = [str(binary), "plan"]
    for name, (value, _) in inputs.items():
        args += ["--" + name.replace("_", "-"), f"{value:g}" if isinstance(value, float) else str(value)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no output"])[0]
        return {"error": f"concert-reservation plan failed: {first[:300]}", "args": args[1:]}
    return {"inputs": {k: {"value": v, "from": src} for k, (v, src) in inputs.items()},
            "command": "concert-reservation " + " ".join(args[1:]), "plan": parse_plan(done.stdout)}


def within(measured, predicted, tolerance=TOLERANCE):
    """Whether `measured` is within ±tolerance of `predicted` (None when either is missing)."""
    if measured is None or predicted is None:
        return None
    return abs(measured - predicted) <= tolerance * abs(predicted)


def off_by(measured, predicted):
    """How far the measurement is from the prediction, as a share of the prediction."""
    if measured is None or predicted is None or predicted == 0:
        return None
    return (measured - predicted) / predicted


def measured_of(m):
    return {"admit_per_second": m["admission_rate"], "sold_out_after_seconds": m["last_seat_s"],
            "fans_admitted": m["admitted_before_last_seat"], "fans_told_sold_out": m["told_sold_out_waiting"]}


def compare(check, opening, m):
    """Per predicted quantity: measured, the plan for the run's inputs (judged ±20 %, except the
    fans admitted, which the measured conversion makes agree by construction) and the plan set
    before the opening (for information)."""
    plan = check.get("plan") or {}
    before = {"admit_per_second": opening.get("plan_admit"), "sold_out_after_seconds": opening.get("plan_sold_out_s"),
              "fans_admitted": opening.get("plan_fans_admitted"), "fans_told_sold_out": opening.get("plan_told")}
    measured = measured_of(m)
    rows = []
    for key, label, digits in PREDICTED:
        judged = key != "fans_admitted"
        rows.append({"quantity": key, "label": label, "digits": digits, "measured": measured[key],
                     "planned": plan.get(key), "off_by": off_by(measured[key], plan.get(key)),
                     "within": within(measured[key], plan.get(key)) if judged else None, "judged": judged,
                     "planned_before": before[key], "off_by_before": off_by(measured[key], before[key]),
                     "within_before": within(measured[key], before[key])})
    return {"rows": rows, "error": check.get("error"),
            "passed": None if check.get("error") else all(r["within"] for r in rows if r["judged"])}


def since_opening(rows):
    """The stampede's result rows, their times counted from the opening (the k6 script's t0 here)."""
    return [[label.replace("(since the start)", "(since the opening)"), value] for label, value in rows]


def reasons(m, server, samples, opening):
    """Numbers that say why each measured quantity is what it is (the report's last column)."""
    a = server.get("admission") or {}
    active = [r["active"] for r in samples if r.get("active") is not None]
    return {
        "admit_per_second": ("every fan in line was admitted before the last seat went (the line ran out); "
                             if m["admitted_before_last_seat"] and m["admitted_before_last_seat"] >= m["entered_before_opening"]
                             else "") + f"adaptive target min / mean / max {num(a.get('target_rate_min'), 1)} / "
                            f"{num(a.get('target_rate_mean'), 1)} / {num(a.get('target_rate_max'), 1)} fans/s; ACTIVE "
                            f"peak {num(max(active) if active else None, 0)} of the cap {num(opening.get('cap'), 0)}",
        "sold_out_after_seconds": f"the last buyer was admitted at {secs(m['last_buyer_admitted_s'])}; admission → hold "
                                  f"mean {secs(m['seconds_to_buy_mean'])}, P95 {secs(m['seconds_to_buy_p95'])}, "
                                  f"slowest buyer {secs(m['seconds_to_buy_max'])}",
        "fans_admitted": f"{num(m['admitted_before_last_seat'], 0)} admitted in the {secs(m['last_seat_s'])} until the last "
                         f"seat went, {num(m['held'], 0)} of them got one",
        "fans_told_sold_out": f"{num(m['fans'], 0)} fans, {num(m['admitted'], 0)} admitted in all; {num(m['told_sold_out'], 0)} "
                              "told SOLD_OUT in all (while waiting, or by a hold or an empty seat map once admitted)",
    }


def plan_table(comparison, why=None):
    why = why or {}
    rows = []
    for r in comparison["rows"]:
        d = r["digits"]
        verdict = ("PASS" if r["within"] else "**FAIL**") if r["within"] is not None else (
            "agrees by construction (conversion measured from it)" if not r["judged"] else "n/a")
        rows.append([r["label"], num(r["measured"], d), num(r["planned"], d), signed_pct(r["off_by"]), verdict,
                     num(r["planned_before"], d), signed_pct(r["off_by_before"]), why.get(r["quantity"], "")])
    caption = ("The planner (`concert-reservation plan`, which prints seconds to 0.1 s) fed this run's inputs (below) "
               "against what the run measured; "
               f"a prediction passes when the measurement is within ±{TOLERANCE:.0%} of it (issue 15). \"Before the "
               "opening\" is the plan the organiser set the queue from (capacityPlan in k6's setup), for comparison. Measured "
               "admission rate: fans admitted after the first admission tick until the last seat went ÷ the time from that "
               "tick to the last admission before it; fans told SOLD_OUT "
               "while waiting: never admitted, told by enterQueue or queueStatus.")
    if comparison.get("error"):
        caption += f" The plan for the run's inputs could not be made: {comparison['error']}."
    return Table(["quantity", "measured", "planned (run's inputs)", "measured vs plan", "±20 %", "planned before the opening",
                  "measured vs that plan", "measured: why"], rows, caption)


def signed_pct(share):
    return "n/a" if share is None else f"{share * 100:+,.0f} %".replace("-0 %", "+0 %")


def inputs_table(check):
    inputs = check.get("inputs") or {}
    rows = [[f"`--{k.replace('_', '-')}`", f"{v['value']:,g}" if isinstance(v["value"], (int, float)) else str(v["value"]),
             v["from"]] for k, v in inputs.items()]
    caption = "The planner's inputs for this run, and where each came from" + (
        f" (`{check['command']}`):" if check.get("command") else ":")
    return Table(["input", "value", "from"], rows, caption)


def priors_table(priors, opening):
    """The inputs of the plan the queue was set from, before the opening (k6's capacityPlan)."""
    rows = [[f"`{name}`", f"{d['value']:,g}", d["from"]] for name, d in priors.items()]
    rows += [["seats, fans", f"{num(opening.get('seats'), 0)}, {num(opening.get('fans'), 0)}", "the run's (SEATS, --users)"]]
    return Table(["input", "value", "from"], rows, "The inputs of the plan set before the opening, and where each came from "
                 f"(it gave admitPerSecond {num(opening.get('plan_admit'), 1)} and activeCap "
                 f"{num(opening.get('plan_cap'), 0)}, which the organiser set):")


def waits_table(m, opening):
    before = {}
    for item in str(opening.get("plan_waits") or "").split(","):
        pos, _, seconds = item.partition(":")
        if pos.isdigit():
            before[int(pos)] = float(seconds)
    rows = [[num(p, 0), secs(w), secs(before.get(p))] for p, w in m["waits"]]
    return Table(["place in line (order of admission)", "admitted, seconds after the opening",
                  "planned wait (before the opening)"], rows,
                 "Waits by place in line: the fan admitted p-th (the queue admits in order, so p is its place after the "
                 "shuffle) and when; the planner's wait at p is (p − 1) ÷ its admission rate.")


def opening_rows(m, sale):
    o, q = sale["opening"], sale["queue_opening"]
    return [
        ["the sale (set up by the organiser through the API)",
         f"concert {o.get('concert')}, performance {o.get('schedule')}, {num(o.get('seats'), 0)} seats; the pre-queue "
         f"opened {secs(_after(o.get('open_ms'), o.get('prequeue_ms')))} before the sale"],
        ["fans in line before the opening (enterQueue answered PREQUEUE)",
         f"{num(m['entered_before_opening'], 0)} of {num(m['fans'], 0)}; the last fan's enterQueue was answered "
         + ("n/a" if m["entered_last_s"] is None else f"{secs(abs(m['entered_last_s']))} "
            + ("before" if m["entered_last_s"] < 0 else "after") + " the opening")],
        ["first admission / first ACTIVE seen by a fan, after the opening (must be ≥ 0)",
         f"{secs(m['first_admitted_s'])} / {secs(m['first_active_seen_s'])}"],
        ["fans ACTIVE or admitted before the opening", num(m["active_before_opening"], 0)],
        ["seats: first / last went, after the opening", f"{secs(m['first_seat_s'])} / {secs(m['last_seat_s'])}"],
        ["fans admitted before the last seat went / in all", f"{num(m['admitted_before_last_seat'], 0)} / {num(m['admitted'], 0)}"],
        ["fans told SOLD_OUT while waiting / in all", f"{num(m['told_sold_out_waiting'], 0)} / {num(m['told_sold_out'], 0)}"],
        ["time to buy: admission → hold, mean / P95 / slowest; ACTIVE seen → hold, mean",
         f"{secs(m['seconds_to_buy_mean'])} / {secs(m['seconds_to_buy_p95'])} / {secs(m['seconds_to_buy_max'])}; "
         f"{secs(m['seconds_seen_to_hold_mean'])}"],
        ["the server's opening (`queueOpening`)",
         "not answered" if not q else ", ".join(f"{k} {v}" for k, v in q.items())],
    ]


def opening_goals(ctx, r, res, users, m, q, comparison):
    goals = stampede_goals(ctx, r, res, users)
    shuffled, after = (q or {}).get("fansShuffled"), (q or {}).get("fansAfterOpening") or 0
    # A fan whose PREQUEUE answer came as the opening passed, before the shuffle ran, is placed
    # behind the shuffled ones (fansAfterOpening).
    opened_ok = bool(q) and isinstance(shuffled, int) and shuffled + after == m["entered_before_opening"]
    planned = comparison["passed"]
    goals[1:1] = [
        ("every fan was in line before the opening (else raise OPENS_IN_SECONDS)",
         f"{num(m['entered_before_opening'], 0)} of {users:,}", m["entered_before_opening"] == users),
        ("nobody ACTIVE before the opening: every admission and every ACTIVE a fan saw at or after salesOpenAt",
         f"first admission {secs(m['first_admitted_s'])}, first ACTIVE seen {secs(m['first_active_seen_s'])} after it; "
         f"{m['active_before_opening']} before", m["active_before_opening"] == 0 and m["first_admitted_s"] is not None),
        ("the server's opening placed every fan in line (`queueOpening`: fans shuffled + fans after the opening = "
         "fans answered PREQUEUE)",
         "no answer" if not q else f"{shuffled} shuffled + {after} after the opening; {m['entered_before_opening']} in line",
         opened_ok),
        ("the capacity plan for the run's inputs within ±20 % of the measured sale (admission rate, last seat, fans told "
         "SOLD_OUT)" + (" (not judged in a smoke run)" if ctx.smoke else ""),
         comparison.get("error") or ", ".join(
             f"{row['quantity']} {'PASS' if row['within'] else 'FAIL'}" for row in comparison["rows"] if row["judged"]),
         None if ctx.smoke else bool(planned)),
    ]
    return goals


def labels(r, expected, m):
    out = stampede_labels(r, expected)
    out[("opening_active_before_open", "count<1")] = (
        "no fan saw ACTIVE, and no admission time was, before the sale's opening (k6)", num(m["active_before_opening"], 0))
    return out


def headline(users, seats, r, m, comparison):
    judged = [row for row in comparison["rows"] if row["judged"]]
    plan = (comparison.get("error") or
            f"{sum(1 for row in judged if row['within'])} of {len(judged)} planned quantities within ±20 %")
    return (f"{num(m['entered_before_opening'], 0)} of {users:,} fans were in line before the opening; the first was "
            f"admitted {secs(m['first_admitted_s'])} after it; {r['holds_ok']} holds for {seats} seats, the last "
            f"{secs(m['last_seat_s'])} after the opening, with {num(m['admitted_before_last_seat'], 0)} fans admitted by "
            f"then and {num(m['told_sold_out_waiting'], 0)} told SOLD_OUT while waiting; capacity plan: {plan}.")


def load_model_text(ctx, users, opening):
    d = load_model_data(ctx, users, 0, 0)
    return (f"k6's setup() acts as the organiser (an organiser token): createConcert, createSchedule with the pre-queue "
            f"open now and the sale opening {ctx.k6_env.get('OPENS_IN_SECONDS', '30')} s later, layOutSeats, capacityPlan, "
            f"setQueueSettings. Then {users:,} fans = {d['vus']:,} k6 VUs × {d['users_per_vu']} fans enter the queue at once "
            "(PREQUEUE: no place yet), poll when `pollAfterSeconds` says, and from the opening on behave as the seat "
            "stampede's fans: `queueStatus` until ACTIVE → the concert's schedules → the seat map → one hold "
            f"({d['mode']}), at most {d['max_attempts']} holds, stopping at SOLD_OUT or an empty map; BUSY waits "
            "`retryAfterMs` and sends again.")
