"""Scenario 5, sustained load: RATE GraphQL requests/s for DURATION, fans on the full journey
(an open model: JOURNEY_RATE journeys/min = RATE / 8 per second)."""

from loadtest.fmt import ms, num, pct
from loadtest.report import Report, resources_of
from loadtest.scenarios.base import busy_k6, section
from loadtest.scenarios.journeys import (REQUESTS_PER_JOURNEY, JourneyScenario, goals, journey_data, journey_stats,
                                         op_table, results_table, server_section, server_side, windows_of, windows_table)
from loadtest.util import duration_seconds, positive_int

ORDER = ("journey_real_failed", "journey_ms", "http_req_duration")


class Mixed(JourneyScenario):
    name = "mixed"
    title = "Load test: sustained load, full journey (scenario 5)"
    script = "k6-graphql/mixed.js"
    takes = ("rate", "duration", "users")

    def configure(self):
        rate = positive_int("--rate", self.opts.get("rate") or 1000)
        dur = positive_int("--duration", duration_seconds(self.opts.get("duration") or "10m"))
        self.k6_env = {"RATE": rate, "DURATION": dur}
        self.journey_setup(rate * (dur + 2) // REQUESTS_PER_JOURNEY + 10)

    def report(self, ctx):
        s, env = ctx.summary, ctx.k6_env
        rate, duration = ctx.env_int("RATE", 0), ctx.env_int("DURATION", 0)
        js = journey_stats(s)
        windows = windows_of(s, 10)
        sent_per_s = js["requests"] / duration if duration else None
        steady = [w for w in windows if 10 <= w["from_s"] and w["from_s"] + 10 <= duration]
        steady_per_s = sum(w["requests"] for w in steady) / (10 * len(steady)) if steady else None
        sc = ctx.scale
        labels = {
            ("journey_real_failed", "rate<0.001"): ("error rate < 0.1 % (plan, scenario 5; SEAT_UNAVAILABLE is an answer, not an error)",
                                                    f"{pct(js['real_failed_rate'])} ({js['real_failed']:,} of {js['requests']:,})"),
            ("journey_ms", f"p(95)<{round(5000 * sc)}"): ("end-to-end journey P95 < 5 s", ms(js["journey_ms"].get("p(95)"))),
            ("http_req_duration", f"p(95)<{round(500 * sc)}"): ("response time P95 < 500 ms", ms(js["latency_ms"].get("p(95)"))),
            ("http_req_duration", f"p(99)<{round(1000 * sc)}"): ("response time P99 < 1,000 ms", ms(js["latency_ms"].get("p(99)"))),
        }
        g = [(f"requests sent ≥ 95 % of the {rate:,} req/s offered", f"{num(sent_per_s, 1)} req/s over the {duration} s"
              + (f" (steady windows {num(steady_per_s, 0)})" if steady_per_s else ""), sent_per_s is not None and sent_per_s >= 0.95 * rate)]
        res = resources_of(ctx.samples, busy_k6)
        data = journey_data(ctx, js, {"rate": rate, "duration_s": duration, "users": env.get("USERS"), "concerts": env.get("CONCERTS")},
                            requests_sent_in_run=js["requests"], requests_per_second=sent_per_s, steady_requests_per_second=steady_per_s)
        data.update(windows=windows, resources=res)
        return Report(
            title=self.title, data=data, plan=s.judged(ORDER), labels=labels, goals=g + goals(ctx, js), resources=res,
            load_model=(f"k6 `constant-arrival-rate` of journeys, {env.get('JOURNEY_RATE') or round(rate * 60 / 8)}/min (= {rate:,} "
                        f"req/s ÷ 8 requests a journey) for {duration} s, open model; {env.get('USERS')} fans over "
                        f"{env.get('CONCERTS')} concerts"),
            headline=(f"{rate:,} GraphQL req/s offered for {duration} s over every endpoint: {num(sent_per_s, 1)} req/s sent, "
                      f"P95 {ms(js['latency_ms'].get('p(95)'))}, P99 {ms(js['latency_ms'].get('p(99)'))}, error rate "
                      f"{pct(js['real_failed_rate'])}."),
            sections=[section("Results", results_table(js), op_table(js["per_op"]), windows_table(windows, 10)),
                      server_section(server_side(ctx.prom), ctx.pg)])
