"""Breakpoint: the journey's arrival rate raised by --step req/s every --duration from --rate up
to --max until a step's threshold breaks (P95 < 500 ms, errors < 1 %, abortOnFail)."""

from loadtest.fmt import ms, num, pct
from loadtest.metrics import server_latency
from loadtest.report import Report, Table, resources_of
from loadtest.scenarios.base import busy_k6, section
from loadtest.scenarios.journeys import (REQUESTS_PER_JOURNEY, JourneyScenario, goals, journey_data, journey_stats,
                                         op_table, results_table, server_section, server_side)
from loadtest.util import Fatal, duration_seconds, positive_int


def rates_of(start, step, top):
    rates, r = [], start
    while r < top + step:
        rates.append(min(r, top))
        r += step
    return rates


class Breakpoint(JourneyScenario):
    name = "breakpoint"
    title = "Load test: breakpoint (step ramp until a threshold breaks)"
    script = "k6-graphql/breakpoint.js"
    takes = ("rate", "step", "max", "duration", "users")

    def configure(self):
        start = positive_int("--rate", self.opts.get("rate") or 50)
        step = positive_int("--step", self.opts.get("step") or 50)
        top = positive_int("--max", self.opts.get("max") or 1500)
        if top < start:
            raise Fatal("--max must be at least --rate")
        step_s = positive_int("--duration", duration_seconds(self.opts.get("duration") or 30))
        journeys = sum(r * step_s // REQUESTS_PER_JOURNEY for r in rates_of(start, step, top))
        self.k6_env = {"START_RATE": start, "STEP_RATE": step, "MAX_RATE": top, "STEP_SECONDS": step_s}
        self.journey_setup(journeys + 10)

    def report(self, ctx):
        s = ctx.summary
        start, step, top, step_s = (ctx.env_int(k, d) for k, d in (("START_RATE", 50), ("STEP_RATE", 50), ("MAX_RATE", 1500),
                                                                   ("STEP_SECONDS", 30)))
        rates = rates_of(start, step, top)
        js = journey_stats(s)
        server_latency(js["per_op"], ctx.prom)
        steps = steps_of(s, rates, step_s)
        broke = next((x for x in steps if x["thresholds_failed"]), None)
        good = [x for x in steps if not x["thresholds_failed"] and (broke is None or x["step"] < broke["step"])]
        last_good = good[-1] if good else None
        max_tps = last_good["sent_per_s"] if last_good else None
        g = [("max throughput > 500 TPS (success criteria): requests/s sustained by the last step that passed",
              f"{num(max_tps, 0)} req/s", None if ctx.smoke else (max_tps is not None and max_tps > 500))]
        res = resources_of(ctx.samples, busy_k6)
        data = journey_data(ctx, js, {"start_rps": start, "step_rps": step, "max_rps": top, "step_seconds": step_s}, steps=steps,
                            broke_at_rps=broke["target_rps"] if broke else None,
                            last_good_rps=last_good["target_rps"] if last_good else None, max_sustained_rps=max_tps,
                            target_rps_at_end=s.get("breakpoint_target_rps", "value"))
        data["resources"] = res
        where = f"{broke['target_rps']:,} req/s offered" if broke else f"none up to {rates[-1]:,} req/s"
        return Report(
            title=self.title, data=data, judge_plan=False, goals=g + goals(ctx, js), resources=res,
            extra_criteria=[("breaking point: first step with P95 ≥ 500 ms or ≥ 1 % errors", where, None)],
            load_model=(f"k6 `ramping-arrival-rate` of journeys (8 requests each): from {start:,} req/s, +{step:,} every {step_s} s "
                        f"(each step reached in 1 s), up to {top:,}; each step's requests are judged on their own, with abortOnFail"),
            headline=(f"broke at {broke['target_rps']:,} req/s offered ({', '.join(broke['thresholds_failed'])}); " if broke
                      else f"did not break up to {rates[-1]:,} req/s; ")
                     + f"the last step that held: {num(last_good['target_rps'] if last_good else None, 0)} req/s offered, "
                       f"{num(max_tps, 0)} req/s sent.",
            sections=[section("Results", step_table(steps), results_table(js), op_table(js["per_op"])),
                      server_section(server_side(ctx.prom), ctx.pg)])


def steps_of(s, rates, step_s):
    thresholds = s.thresholds()
    steps = []
    for i, rate in enumerate(rates):
        tag = f"s{i:02d}"
        n = s.get(f"http_reqs{{step:{tag}}}", "count")
        if not n:
            continue
        failed = [f"{name.split('{')[0]} {expr}" for name, expr, ok in thresholds if name.endswith(f"{{step:{tag}}}") and not ok]
        steps.append({"step": i, "target_rps": rate, "requests": int(n), "sent_per_s": n / step_s,
                      "p95_ms": s.get(f"http_req_duration{{step:{tag}}}", "p(95)"),
                      "p99_ms": s.get(f"http_req_duration{{step:{tag}}}", "p(99)"),
                      "failed_rate": s.get(f"journey_real_failed{{step:{tag}}}", "value"),
                      "journey_p95_ms": s.get(f"journey_ms{{step:{tag}}}", "p(95)"), "thresholds_failed": failed})
    return steps


def step_table(steps):
    rows = [[str(x["step"] + 1), f"{x['target_rps']:,}", f"{x['sent_per_s']:,.0f}", ms(x["p95_ms"]), ms(x["p99_ms"]),
             pct(x["failed_rate"]), ms(x["journey_p95_ms"]),
             "**" + ", ".join(x["thresholds_failed"]) + "**" if x["thresholds_failed"] else "ok"] for x in steps]
    return Table(["step", "offered req/s", "sent req/s", "P95", "P99", "error rate", "journey P95", "thresholds"], rows)
