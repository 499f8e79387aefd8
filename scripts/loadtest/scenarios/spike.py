"""Spike: the journey at RATE req/s, a sudden SPIKE_FACTOR (10) x burst, then RATE again: the
recovery. Env: SPIKE_FACTOR (10), BASELINE_SECONDS (60), BURST_SECONDS (60), RECOVERY_SECONDS (120)."""

import re

from loadtest.fmt import ms, pct, secs
from loadtest.metrics import server_latency
from loadtest.report import Report, Table, resources_of
from loadtest.scenarios.base import busy_k6, section
from loadtest.scenarios.journeys import (REQUESTS_PER_JOURNEY, JourneyScenario, goals, journey_data, journey_stats,
                                         op_table, results_table, server_section, server_side, windows_of, windows_table)
from loadtest.util import env_int, positive_int

PHASES = ("baseline", "burst", "recovery")


class Spike(JourneyScenario):
    name = "spike"
    title = "Load test: spike (10× burst)"
    script = "k6-graphql/spike.js"
    takes = ("rate", "users")

    def configure(self):
        rate = positive_int("--rate", self.opts.get("rate") or 100)
        factor, base_s = env_int("SPIKE_FACTOR", 10), env_int("BASELINE_SECONDS", 60)
        burst_s, rec_s = env_int("BURST_SECONDS", 60), env_int("RECOVERY_SECONDS", 120)
        self.k6_env = {"RATE": rate, "SPIKE_FACTOR": factor, "BASELINE_SECONDS": base_s, "BURST_SECONDS": burst_s,
                       "RECOVERY_SECONDS": rec_s}
        self.journey_setup((rate * (base_s + rec_s + 4) + rate * factor * (burst_s + 4)) // REQUESTS_PER_JOURNEY + 10)

    def report(self, ctx):
        s = ctx.summary
        rate, factor = ctx.env_int("RATE", 0), ctx.env_int("SPIKE_FACTOR", 10)
        base_s, burst_s, rec_s = (ctx.env_int(k, d) for k, d in (("BASELINE_SECONDS", 60), ("BURST_SECONDS", 60), ("RECOVERY_SECONDS", 120)))
        burst_end = base_s + 2 + burst_s
        js = journey_stats(s)
        server_latency(js["per_op"], ctx.prom)
        phases = {p: journey_stats(s, f"phase:{p}") for p in PHASES}
        windows = windows_of(s, 5)
        p95_limit = 500 * ctx.scale
        recovered_at = next((w["from_s"] for w in windows if w["from_s"] >= burst_end and (w["p95_ms"] or 0) < p95_limit
                             and not w["failed_rate"]), None)
        recovery_s = recovered_at - burst_end if recovered_at is not None else None
        plan = sorted(s.judged(), key=lambda t: ({"baseline": 0, "burst": 1, "recovery": 2}.get(re.sub(r".*phase:(\w+).*", r"\1", t[0]), 3), t[0], t[1]))
        g = [(f"back to P95 < {p95_limit:g} ms with no failed request after the burst (first whole 5 s window after it)",
              secs(recovery_s) + " after the burst", recovery_s is not None)]
        res = resources_of(ctx.samples, busy_k6)
        data = journey_data(ctx, js, {"rate": rate, "factor": factor, "baseline_s": base_s, "burst_s": burst_s, "recovery_s": rec_s},
                            phases=phases, recovery_seconds=recovery_s)
        data.update(windows=windows, resources=res)

        def mark(w):
            return "burst" if base_s <= w["from_s"] < burst_end else ("recovered" if w["from_s"] == recovered_at else "")
        return Report(
            title=self.title, data=data, plan=plan, labels=labels(phases, ctx.scale), goals=g + goals(ctx, js), resources=res,
            load_model=(f"k6 `ramping-arrival-rate` of journeys (8 requests each): {rate:,} req/s for {base_s} s, {rate * factor:,} "
                        f"req/s within 2 s and for {burst_s} s, back to {rate:,} within 2 s and for {rec_s} s; requests tagged by phase"),
            headline=(f"{rate:,} req/s, then {rate * factor:,} req/s for {burst_s} s, then {rate:,} again: burst P95 "
                      f"{ms(phases['burst']['latency_ms'].get('p(95)'))}, error rate {pct(phases['burst']['real_failed_rate'])}; "
                      f"recovered {secs(recovery_s)} after the burst."),
            sections=[section("Results", phase_table(phases, {"baseline": base_s, "burst": burst_s + 2, "recovery": rec_s + 2}),
                              results_table(js), op_table(js["per_op"]), windows_table(windows, 5, mark)),
                      server_section(server_side(ctx.prom), ctx.pg)])


def labels(phases, scale):
    out = {}
    for p in ("baseline", "recovery"):
        lat = phases[p]["latency_ms"]
        out[(f"http_req_duration{{phase:{p}}}", f"p(95)<{round(500 * scale)}")] = (f"{p}: response time P95 < 500 ms", ms(lat.get("p(95)")))
        out[(f"http_req_duration{{phase:{p}}}", f"p(99)<{round(1000 * scale)}")] = (f"{p}: response time P99 < 1,000 ms", ms(lat.get("p(99)")))
        out[(f"journey_real_failed{{phase:{p}}}", "rate<0.001")] = (f"{p}: error rate < 0.1 %", pct(phases[p]["real_failed_rate"]))
    out[("journey_real_failed{phase:burst}", "rate<0.005")] = ("burst: error rate < 0.5 % (success criteria)",
                                                              pct(phases["burst"]["real_failed_rate"]))
    return out


def phase_table(phases, lengths):
    rows = [[p, f"{d['requests']:,}", f"{d['requests'] / max(1, lengths[p]):,.0f}",
             *(ms(d["latency_ms"].get(k)) for k in ("med", "p(95)", "p(99)", "max")), pct(d["real_failed_rate"]),
             ms(d["journey_ms"].get("p(95)"))] for p, d in phases.items()]
    return Table(["phase", "requests", "sent/s", "P50", "P95", "P99", "max", "error rate", "journey P95"], rows)
