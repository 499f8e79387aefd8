"""Scenario 5, sustained load: RATE GraphQL requests/s for DURATION, fans on the full journey
through the waiting queue with the product's default (adaptive) admission (an open model:
JOURNEY_RATE journeys/min = RATE / 8 per second). Reports journeys completed per minute against
the offered rate and the admission ceiling, the journey once ACTIVE, per-request latency,
failures (BUSY apart) and the server's RSS drift. Env: any QUEUE_* server setting to run with
other than the product's defaults (recorded in the report), POLL, BUSY_RETRIES."""

from loadtest.fmt import ms, num, pct
from loadtest.metrics import server_latency
from loadtest.report import Report, resources_of
from loadtest.scenarios.base import (ADMISSION_DEFAULTS, admission_over_time, admission_row, admission_text, busy_k6, kv_table,
                                     rss_drift, section)
from loadtest.scenarios.journeys import (REQUESTS_PER_JOURNEY, JourneyScenario, goals, journey_data, journey_stats,
                                         op_table, results_table, server_section, server_side, windows_of, windows_table)
from loadtest.util import duration_seconds, positive_int

ORDER = ("journey_real_failed", "journey_active_ms", "journey_answer_ms")


class Mixed(JourneyScenario):
    name = "mixed"
    title = "Load test: sustained load, full journey (scenario 5)"
    script = "k6-graphql/mixed.js"
    takes = ("rate", "duration", "users")

    def configure(self):
        rate = positive_int("--rate", self.opts.get("rate") or 1000)
        dur = positive_int("--duration", duration_seconds(self.opts.get("duration") or "10m"))
        self.k6_env = {"RATE": rate, "DURATION": dur}
        self.journey_setup(rate * (dur + 2) // REQUESTS_PER_JOURNEY + 10, metered=True)

    def report(self, ctx):
        s, env = ctx.summary, ctx.k6_env
        rate, duration = ctx.env_int("RATE", 0), ctx.env_int("DURATION", 0)
        js = journey_stats(s)
        server_latency(js["per_op"], ctx.prom)
        windows = windows_of(s, 10)
        sent_per_s = js["requests"] / duration if duration else None
        steady = [w for w in windows if 10 <= w["from_s"] and w["from_s"] + 10 <= duration]
        steady_per_s = sum(w["requests"] for w in steady) / (10 * len(steady)) if steady else None
        g = [(f"requests sent ≥ 95 % of the {rate:,} req/s offered", f"{num(sent_per_s, 1)} req/s over the {duration} s"
              + (f" (steady windows {num(steady_per_s, 0)})" if steady_per_s else ""), sent_per_s is not None and sent_per_s >= 0.95 * rate)]
        res = resources_of(ctx.samples, busy_k6)
        drift = rss_drift(ctx.samples)
        admission = admission_over_time(ctx.samples)
        pace = journey_pace(js, duration, int(env.get("JOURNEY_RATE") or round(rate * 60 / REQUESTS_PER_JOURNEY)),
                            ctx.env_int("CONCERTS", 1), ctx.server_env, server_side(ctx.prom).get("queue_admissions_total"))
        data = journey_data(ctx, js, {"rate": rate, "duration_s": duration, "users": env.get("USERS"), "concerts": env.get("CONCERTS"),
                                      "admission": admission_text(ctx.server_env)},
                            requests_sent_in_run=js["requests"], requests_per_second=sent_per_s, steady_requests_per_second=steady_per_s,
                            journeys_per_minute=pace, rss_drift=drift, admission=admission)
        data.update(windows=windows, resources=res)
        return Report(
            title=self.title, data=data, plan=s.judged(ORDER), labels=labels(js, ctx.scale), goals=g + goals(ctx, js), resources=res,
            load_model=(f"k6 `constant-arrival-rate` of journeys, {env.get('JOURNEY_RATE') or round(rate * 60 / 8)}/min (= {rate:,} "
                        f"req/s ÷ 8 requests a journey) for {duration} s, open model; {env.get('USERS')} fans over "
                        f"{env.get('CONCERTS')} concerts, each through the waiting queue (polls after each `pollAfterSeconds`)"),
            run_rows=[("admission", admission_text(ctx.server_env))],
            headline=(f"{rate:,} GraphQL req/s offered for {duration} s over every endpoint through the queue "
                      f"({admission_text(ctx.server_env, short=True)}): {num(sent_per_s, 1)} req/s sent, "
                      f"{num(pace['completed_per_min'], 0)} journeys completed per minute, journey P95 once ACTIVE "
                      f"{ms(js['journey_active_ms'].get('p(95)'))}, request P95 {ms(js['answer_latency_ms'].get('p(95)'))}, "
                      f"error rate {pct(js['real_failed_rate'])}, BUSY {js['busy']['count']:,}."),
            sections=[section("Results", results_table(js), kv_table(pace_rows(pace, drift) + [admission_row(admission)]),
                              op_table(js["per_op"]),
                              windows_table(windows, 10)),
                      server_section(server_side(ctx.prom), ctx.pg)])


def labels(js, sc):
    return {
        ("journey_real_failed", "rate<0.001"): ("error rate < 0.1 % (plan, scenario 5; SEAT_UNAVAILABLE and SOLD_OUT are answers, "
                                                "BUSY is retried and counted apart)",
                                                f"{pct(js['real_failed_rate'])} ({js['real_failed']:,} of {js['requests']:,})"),
        ("journey_active_ms", f"p(95)<{round(5000 * sc)}"): ("journey P95 < 5 s once ACTIVE (ACTIVE seen → `me` answered)",
                                                            ms(js["journey_active_ms"].get("p(95)"))),
        ("journey_answer_ms", f"p(95)<{round(500 * sc)}"): ("response time P95 < 500 ms (every request not answered BUSY)",
                                                           ms(js["answer_latency_ms"].get("p(95)"))),
        ("journey_answer_ms", f"p(99)<{round(1000 * sc)}"): ("response time P99 < 1,000 ms (every request not answered BUSY)",
                                                            ms(js["answer_latency_ms"].get("p(99)"))),
    }


def journey_pace(js, duration_s, offered_per_min, concerts, server_env, admissions):
    """Journeys completed (paid) per minute against what was offered and what the queue may admit
    (its configured maximum rate per concert × concerts: the admission ceiling)."""
    minutes = duration_s / 60 if duration_s else None
    paid = js["outcomes"].get("paid", 0)
    admit = float(server_env.get("QUEUE_ADMIT_PER_SECOND") or ADMISSION_DEFAULTS["QUEUE_ADMIT_PER_SECOND"])
    ceiling = admit * 60 * concerts
    completed = paid / minutes if minutes else None
    return {"completed": paid, "completed_per_min": completed, "offered_per_min": offered_per_min,
            "completed_of_offered": completed / offered_per_min if completed is not None and offered_per_min else None,
            "admission_ceiling_per_min": ceiling, "admitted_per_min": admissions / minutes if admissions and minutes else None}


def pace_rows(p, drift):
    rows = [["journeys completed (paid) per minute", f"**{num(p['completed_per_min'], 0)}** ({p['completed']:,} in all) = "
             f"{pct(p['completed_of_offered'], 1)} of the {p['offered_per_min']:,} offered per minute"],
            ["admission ceiling (QUEUE_ADMIT_PER_SECOND × concerts) / fans admitted per minute (`queue_admissions_total`)",
             f"{num(p['admission_ceiling_per_min'], 0)} / {num(p['admitted_per_min'], 0)} per minute"]]
    if drift:
        rows.append(["server RSS drift: first → last minute (mean of the 1 s samples); trend; peak",
                     f"{num(drift['start_mb'], 0)} → {num(drift['end_mb'], 0)} MB ({drift['drift_mb']:+,.0f} MB); "
                     f"{drift['slope_mb_per_min']:+,.1f} MB/min over {num(drift['seconds'], 0)} s; peak {num(drift['peak_mb'], 0)} MB"])
    else:
        rows.append(["server RSS drift", "n/a (fewer than two samples)"])
    return rows
