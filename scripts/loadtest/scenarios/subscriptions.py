"""Queue subscriptions: N websocket subscribers to `queueStatus` while the queue admits them.
Env: ADMIT_SECONDS (60: the admission rate lets the crowd in over about this long),
CONNECT_SECONDS (20: subscribers arrive spread over this long), FANS_PER_VU (50)."""

from loadtest.fmt import lat_row, ms, n0, num, pct, secs
from loadtest.report import Report, resources_of
from loadtest.scenarios.base import Scenario, kv_table, queue_settings, section
from loadtest.util import env_int, positive_int, seconds_between

ORDER = ("sub_dropped", "sub_errors", "sub_not_activated", "sub_ack_ms", "sub_first_update_ms", "sub_active_push_ms")


class Subscriptions(Scenario):
    name = "subscriptions"
    title = "Load test: queue subscriptions over websockets"
    script = "k6-graphql/subscriptions.js"
    takes = ("subscribers",)
    queue_concert = 1

    def configure(self):
        n = positive_int("--subscribers", self.opts.get("subscribers") or 10000)
        admit_s, connect_s = env_int("ADMIT_SECONDS", 60), env_int("CONNECT_SECONDS", 20)
        rate = -(-n // admit_s)
        self.k6_env = {"SUBSCRIBERS": n, "CONCERT_ID": 1, "ACTIVE_TTL_SECONDS": 900, "CONNECT_SECONDS": connect_s,
                       "MAX_SECONDS": connect_s + 2 * admit_s + 60, "ADMIT_PER_SECOND": rate}
        # The queue needs no user rows; one small concert is enough.
        self.seed_args = ["--concerts", "1", "--schedules-per-concert", "1", "--seats-per-schedule", "10", "--users", "10",
                          "--points", "0"]
        # Subscribers arrive faster than they are admitted: a line builds up, then drains, so every
        # subscriber sees its position change before it is admitted.
        self.server_env = queue_settings(rate, n + 1000, 60, 900, tick=500)

    def report(self, ctx):
        s, env, server_env = ctx.summary, ctx.k6_env, ctx.server_env
        n = ctx.env_int("SUBSCRIBERS", 0)
        r = results(s, ctx)
        c = s.count
        goals = [("every subscriber subscribed", f"{c('sub_subscribed'):,} of {n:,}", c("sub_subscribed") == n),
                 ("positions only ever went down", f"{c('sub_position_regressions'):,} went up", c("sub_position_regressions") == 0)]
        res = resources_of(ctx.samples)
        admit = float(server_env.get("QUEUE_ADMIT_PER_SECOND", "1") or 1)
        return Report(
            title=self.title, goals=goals, resources=res, resources_window="over the run", plan=s.judged(ORDER),
            labels=labels(s, r, ctx.scale),
            load_model=(f"{n:,} fans, {ctx.env_int('FANS_PER_VU', 50)} per k6 VU (websockets, event loop), arriving evenly over "
                        f"{env.get('CONNECT_SECONDS')} s: enterQueue over HTTP, then a websocket (graphql-transport-ws) with the JWT "
                        f"in `connection_init`, subscribe `queueStatus(token)`; on ACTIVE the fan closes. Admission lets the crowd "
                        f"in over about {max(1, round(n / admit))} s."),
            headline=(f"{n:,} subscribers to `queueStatus` while the queue admitted {server_env.get('QUEUE_ADMIT_PER_SECOND')}/s: "
                      f"{r['activated']:,} pushed ACTIVE, {sum(r['dropped'].values()):,} dropped; connect+ack P95 "
                      f"{ms(r['ack_ms'].get('p(95)'))}, first update P95 {ms(r['first_update_ms'].get('p(95)'))}, ACTIVE push P95 "
                      f"{ms(r['active_push_ms'].get('p(95)'))}, {r['updates']:,} updates."),
            data={"load_model": {"subscribers": n, "fans_per_vu": ctx.env_int("FANS_PER_VU", 50),
                                 "connect_seconds": env.get("CONNECT_SECONDS"), "admit_per_second": server_env.get("QUEUE_ADMIT_PER_SECOND")},
                  "results": r, "resources": res},
            sections=[section("Results", kv_table(result_rows(s, r, n)))])


def results(s, ctx):
    c = s.count
    rows = ctx.samples

    def peak(key):
        return max((x[key] for x in rows if x.get(key) is not None), default=None)
    return {"subscribed": c("sub_subscribed"), "activated": c("sub_activated"), "expired": c("sub_expired"),
            "not_activated": c("sub_not_activated"), "connect_ms": s.latency("sub_connect_ms"), "ack_ms": s.latency("sub_ack_ms"),
            "first_update_ms": s.latency("sub_first_update_ms"), "active_push_ms": s.latency("sub_active_push_ms"),
            "update_gap_ms": s.latency("sub_update_gap_ms", ("med", "p(95)", "p(99)", "max")), "updates": c("sub_updates"),
            "wait_seconds": s.latency("sub_wait_seconds", ("med", "p(95)", "max")),
            "dropped": {k: c(f"sub_dropped{{stage:{k}}}") for k in ("connecting", "waiting")},
            "errors": {k: c(f"sub_errors{{kind:{k}}}") for k in ("socket", "subscription", "protocol")},
            "position_regressions": c("sub_position_regressions"), "peak_subscribers": peak("queue_subscribers"),
            "peak_waiting": peak("waiting"), "server_rss_peak_kb": peak("server_rss_kb"),
            "server_rss_start_kb": rows[0].get("server_rss_kb") if rows else None,
            "duration_s": seconds_between(ctx.started, ctx.finished),
            "enter_failed_rate": s.get("graphql_failed{op:enterQueue}", "value")}


def labels(s, r, scale):
    c = s.count
    return {
        ("sub_dropped", "count<1"): ("no connection dropped before ACTIVE", f"{c('sub_dropped'):,}"),
        ("sub_errors", "count<1"): ("no socket or subscription error", f"{c('sub_errors'):,}"),
        ("sub_not_activated", "count<1"): ("every subscriber pushed ACTIVE", f"{c('sub_not_activated'):,} not"),
        ("sub_ack_ms", f"p(95)<{round(1000 * scale)}"): ("connect + authenticate (connection_ack) P95 < 1 s", ms(r["ack_ms"].get("p(95)"))),
        ("sub_first_update_ms", f"p(95)<{round(1000 * scale)}"): ("first update P95 < 1 s", ms(r["first_update_ms"].get("p(95)"))),
        ("sub_active_push_ms", f"p(95)<{round(1000 * scale)}"): ("ACTIVE pushed within 1 s of admission, P95", ms(r["active_push_ms"].get("p(95)"))),
        ("graphql_failed{op:enterQueue}", "rate<0.005"): ("enterQueue error rate < 0.5 %", pct(r["enter_failed_rate"])),
    }


def result_rows(s, r, n):
    d, e, dur = r["dropped"], r["errors"], r["duration_s"]
    rss = (f"{num((r['server_rss_start_kb'] or 0) / 1024, 0)} MB at the start, {num((r['server_rss_peak_kb'] or 0) / 1024, 0)} MB "
           f"at the peak")
    return [
        ["subscribers subscribed / pushed ACTIVE / EXPIRED / not ACTIVE by the deadline",
         f"{r['subscribed']:,} / {r['activated']:,} / {r['expired']:,} / {r['not_activated']:,}"],
        ["websocket open (upgrade) P50 / P95 / P99 / max", lat_row(r["connect_ms"])],
        ["open → connection_ack P50 / P95 / P99 / max", lat_row(r["ack_ms"])],
        ["subscribe → first update P50 / P95 / P99 / max", lat_row(r["first_update_ms"])],
        ["admission → ACTIVE received P50 / P95 / P99 / max", lat_row(r["active_push_ms"])],
        ["gap between a subscriber's updates P50 / P95 / P99 / max", lat_row(r["update_gap_ms"])],
        ["updates received", f"{r['updates']:,} ({r['updates'] / max(1, n):,.1f} per subscriber; "
         f"{num(r['updates'] / dur if dur else None, 0)}/s over {secs(dur)})"],
        ["wait in line (entered → ACTIVE) P50 / P95 / max", " / ".join(secs(r["wait_seconds"].get(k)) for k in ("med", "p(95)", "max"))],
        ["dropped (connecting / waiting)", f"{d['connecting']:,} / {d['waiting']:,}"],
        ["errors (socket / subscription / protocol)", f"{e['socket']:,} / {e['subscription']:,} / {e['protocol']:,}"],
        ["enterQueue P95 / error rate", f"{ms(s.get('http_req_duration{op:enterQueue}', 'p(95)'))} / {pct(r['enter_failed_rate'])}"],
        ["peak subscribers on the server (`queue_subscribers`) / peak waiting in line",
         f"{n0(r['peak_subscribers'])} / {n0(r['peak_waiting'])}"],
        ["server memory (RSS)", rss],
    ]
