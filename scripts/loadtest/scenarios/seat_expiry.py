"""Scenario 4, seat-expiry batch: N seats held through the API (prepare phase), their holds made to
end in the same instant, then the watch: sweeper -> outbox -> relay -> Kafka -> consumer -> seats
AVAILABLE. Env: SEATS_PER_HOLD (1, up to HOLD_MAX_SEATS), TARGET_SECONDS (60: every seat back
within this long), ALIGN_EXPIRY (1), EXPIRY_WAIT_SECONDS (3 x TARGET_SECONDS)."""

import os
import threading

from loadtest.checks import Measure
from loadtest.fmt import counts, le_ms, ms, n0, num, secs
from loadtest.metrics import bucket_quantile, counter_by, counter_sum, hist_buckets, hist_diff
from loadtest.report import Report, Table, resources_of
from loadtest.scenarios.base import Scenario, kv_table, queue_settings, section
from loadtest.util import Fatal, positive_int, read_json, read_tsv, rel, say, utc_now, write_json

ORDER = ("expiry_released_seconds", "expiry_api_available_seconds", "expiry_seatmap_available_seconds", "expiry_not_back",
         "expiry_peak_lag")
HELD_NOW = ("select count(*), (select count(*) from seats where status = 'HELD'), "
            "(extract(epoch from min(expires_at)) * 1000)::bigint, (extract(epoch from max(expires_at)) * 1000)::bigint, "
            "coalesce(extract(epoch from min(expires_at) - now()), 0) from reservations where status = 'HELD'")
WAVE = ("select (extract(epoch from clock_timestamp()) * 1000)::bigint, (select count(*) from seats where status = 'HELD'), "
        "(select count(*) from reservations where status = 'HELD'), count(*), count(*) filter (where published_at is null) "
        "from outbox where event_type = 'seats.expired'")


class SeatExpiry(Scenario):
    name = "seat-expiry"
    title = "Load test: seat-expiry batch (scenario 4)"
    script = "k6-graphql/seat-expiry.js"
    takes = ("holds", "ttl")
    has_prepare = True

    def configure(self):
        self.seats = positive_int("--holds", self.opts.get("holds") or 5000)
        self.ttl = positive_int("--ttl", self.opts.get("ttl") or 60)
        per = positive_int("SEATS_PER_HOLD", os.environ.get("SEATS_PER_HOLD") or 1)
        if per > int(os.environ.get("HOLD_MAX_SEATS") or 4):
            raise Fatal(f"SEATS_PER_HOLD must be at most HOLD_MAX_SEATS ({os.environ.get('HOLD_MAX_SEATS') or 4})")
        fans = -(-self.seats // per)
        self.k6_env = {"PHASE": "watch", "SEATS": self.seats, "SEATS_PER_HOLD": per, "FANS": fans, "CONCERT_ID": 1,
                       "SCHEDULE_ID": 1, "HOLD_TTL": self.ttl, "TARGET_SECONDS": os.environ.get("TARGET_SECONDS") or 60}
        self.seed_args = ["--concerts", "1", "--schedules-per-concert", "1", "--seats-per-schedule", str(self.seats),
                          "--users", str(fans), "--points", "1000000"]
        # Holds as fast as the machine makes them (everyone admitted within a tick), lasting --ttl;
        # the expiry pipeline keeps its defaults, listed so the report shows them.
        self.server_env = queue_settings(
            100000, fans + 1000, 120, 3600, HOLD_TTL_SECONDS=self.ttl, HOLD_MAX_SEATS=4, EXPIRY_SWEEP_INTERVAL_MS=1000,
            EXPIRY_SWEEP_BATCH=1000, EXPIRY_BACKSTOP_SECONDS=30, OUTBOX_RELAY_INTERVAL_MS=200, OUTBOX_RELAY_BATCH=500,
            KAFKA_CONSUMER_ENABLED="true", KAFKA_TOPIC_PARTITIONS=3, SEAT_MAP_CACHE_TTL_SECONDS=2)
        self.holds_made = 0

    def prepare(self, run):
        """Every seat held through the API, then (unless ALIGN_EXPIRY=0) every hold's end moved
        to the last one's, so the whole batch expires in one instant, as in the plan."""
        if run.db.value("select count(*) from seats where id <> number or schedule_id <> 1"):
            raise Fatal("seeded seat ids are not 1..N of schedule 1: seat-expiry.js cannot address them")
        say(f"prepare: {self.seats} seats held through the API, holds of {self.ttl} s (log: {rel(run.out_dir / 'prepare-k6.log')})")
        started = utc_now()
        seconds, rc = run.run_phase("prepare")
        holds, seats_held, first_ms, last_ms, margin = run.db.row(HELD_NOW)
        say(f"prepare: {holds} holds ({seats_held} seats) in {seconds}s")
        if not holds:
            raise Fatal(f"no hold was made; see {rel(run.out_dir / 'prepare-k6.log')}")
        if margin < 3:
            raise Fatal(f"the first holds expire {margin:.1f}s after preparing ended: raise --ttl above the {seconds}s holding took")
        aligned = os.environ.get("ALIGN_EXPIRY", "1") == "1"
        if aligned:
            run.db.execute_in_transaction(
                ("update reservations set expires_at = to_timestamp(%s / 1000.0) where status = 'HELD'", (last_ms,)),
                ("update seats set held_until = to_timestamp(%s / 1000.0) where status = 'HELD'", (last_ms,)))
        write_json(run.out_dir / "prepare.json", {"seconds": seconds, "holds": holds, "seats_held": seats_held, "k6_exit": rc,
                                                  "started": started, "first_expires_at_ms": first_ms,
                                                  "last_expires_at_ms": last_ms, "aligned": aligned})
        self.holds_made = holds
        self.k6_env.update(EXPIRES_AT_MS=last_ms, SEATS_HELD=seats_held, HOLDS_MADE=holds)

    def during(self, run):
        return WavePoll(run.db, run.out_dir / "expiry-sql.tsv")

    def measures(self, run):
        n, h = self.seats, self.holds_made
        return [
            Measure("seats still HELD", 0, "select count(*) from seats where status = 'HELD'"),
            Measure("seats AVAILABLE (every seat of the schedule)", n, "select count(*) from seats where status = 'AVAILABLE'"),
            Measure("reservations still HELD", 0, "select count(*) from reservations where status = 'HELD'"),
            Measure("EXPIRED reservations (every hold made)", h, "select count(*) from reservations where status = 'EXPIRED'"),
            Measure("reservations in another state (CONFIRMED, CANCELLED)", 0,
                    "select count(*) from reservations where status not in ('HELD', 'EXPIRED')"),
            Measure("seats.expired events (one per hold)", h, "select count(*) from outbox where event_type = 'seats.expired'"),
            Measure("holds announced by more than one seats.expired event", 0,
                    "select count(*) from (select payload->>'reservation_id' from outbox where event_type = 'seats.expired' "
                    "group by 1 having count(*) > 1) x"),
            Measure("EXPIRED reservations without a seats.expired event", 0,
                    "select count(*) from reservations r where status = 'EXPIRED' and not exists (select 1 from outbox o "
                    "where o.event_type = 'seats.expired' and (o.payload->>'reservation_id')::bigint = r.id)"),
        ]

    def report(self, ctx):
        return expiry_report(self.title, ctx)


class WavePoll(threading.Thread):
    """Every 0.5 s while the watch runs, the database's own view of the wave (expiry-sql.tsv)."""

    def __init__(self, db, path):
        super().__init__(daemon=True)
        self.db, self.path, self.stop_event = db, path, threading.Event()
        self.start()

    def run(self):
        with open(self.path, "w", encoding="utf-8") as out, self.db.connect() as conn:
            out.write("t_ms\tseats_held\treservations_held\texpired_events\texpired_unpublished\n")
            while not self.stop_event.wait(0.5):
                out.write("\t".join(str(v) for v in conn.execute(WAVE).fetchone()) + "\n")
                out.flush()

    def stop(self):
        self.stop_event.set()
        self.join(timeout=5)


def expiry_report(title, ctx):
    s, env = ctx.summary, ctx.k6_env
    seats, target = ctx.env_int("SEATS", 0), float(env.get("TARGET_SECONDS", 60))
    holds_made, seats_held = ctx.env_int("HOLDS_MADE", 0), ctx.env_int("SEATS_HELD", 0)
    prep = read_json(ctx.run_dir / "prepare.json", {}) or {}
    r = results(ctx, holds_made)
    sql_back, released = r["sql_seconds_after_expiry"]["seats_back_s"], r["released_by"]
    goals = [
        (f"every seat back on sale in the database (no seat HELD, SQL poll) within {target:g} s of the expiry", secs(sql_back),
         sql_back is not None and sql_back < target),
        ("released by the consumer, none left for the backstop (EXPIRY_BACKSTOP_SECONDS)",
         f"consumer {released['consumer']:,.0f}, backstop {released['backstop']:,.0f}", released["backstop"] == 0),
        ("every seat was held before the wave", f"{seats_held:,} of {seats:,} seats in {holds_made:,} holds", seats_held == seats),
        ("the scenario's data checks as expected (every hold EXPIRED, announced once, its seats AVAILABLE)",
         f"{sum(1 for c in ctx.checks or [] if c['passed'])} of {len(ctx.checks or [])}", ctx.checks_ok),
    ]
    ps = ctx.summary_of("prepare-summary.json")
    pl = ps.latency("prepare_hold_ms") if ps else {}
    res = resources_of(ctx.samples)
    views = r["seconds_after_expiry"]
    return Report(
        title=title, goals=goals, resources=res, resources_window="over the watch", plan=s.judged(ORDER),
        labels=labels(s, views, target, r["peak_lag"]),
        load_model=(f"{seats:,} seats held in {holds_made:,} holds of {ctx.env_int('SEATS_PER_HOLD', 1)} seat(s) by "
                    f"{ctx.env_int('FANS', 0):,} fans, expiring together; k6 watches the API, the seat map and /metrics"),
        run_rows=[("prepare phase", f"{prep.get('holds', 0):,} holds in {prep.get('seconds')} s; hold P50 / P95 "
                   f"{ms(pl.get('med'))} / {ms(pl.get('p(95)'))}; ends aligned: {prep.get('aligned')}")],
        headline=(f"{seats_held:,} seats in {holds_made:,} holds expired together; every seat back on sale (database) "
                  f"{secs(sql_back)} after the expiry, released (server) {secs(views['released'])}, peak consumer lag "
                  f"{n0(r['peak_lag'])}."),
        data={"load_model": {"seats": seats, "seats_per_hold": ctx.env_int("SEATS_PER_HOLD", 1), "fans": ctx.env_int("FANS", 0),
                             "hold_ttl_s": int(ctx.server_env.get("HOLD_TTL_SECONDS", env.get("HOLD_TTL", 0)) or 0),
                             "target_s": target, "aligned": prep.get("aligned")},
              "prepare": prep, "results": r, "resources": res},
        sections=[section("Results", stage_table(views, r["sql_seconds_after_expiry"], seats), kv_table(pipeline_rows(s, r)),
                          latency_table(r["expiry_release_latency_s"]["buckets"]), sql_timeline(ctx, r))])


def results(ctx, holds_made):
    s, prom, before = ctx.summary, ctx.prom, ctx.prom_prepare
    expires_at = ctx.env_int("EXPIRES_AT_MS", 0)
    one = lambda name: s.get(name, "max")  # noqa: E731  (each view is recorded once)
    views = {k: one(f"expiry_{m}_seconds") for k, m in (("api", "api_available"), ("seat_map", "seatmap_available"),
             ("swept", "swept"), ("relayed", "relayed"), ("consumed", "consumed"), ("released", "released"))}
    sql_rows = read_tsv(ctx.run_dir / "expiry-sql.tsv")

    def first(cond):
        return next((round((r["t_ms"] - expires_at) / 1000, 2) for r in sql_rows
                     if r.get("t_ms") is not None and r["t_ms"] >= expires_at and cond(r)), None)

    def delta(name, match=None):
        a = counter_sum(prom, name, match)
        return None if a is None else a - (counter_sum(before, name, match) or 0)

    latency = hist_diff(hist_buckets(prom, "expiry_release_latency_seconds"), hist_buckets(before, "expiry_release_latency_seconds"))
    lat_n = max(latency.values()) if latency else 0
    lat_sum = (counter_sum(prom, "expiry_release_latency_seconds_sum") or 0) - (counter_sum(before, "expiry_release_latency_seconds_sum") or 0)
    pub = hist_diff(hist_buckets(prom, "outbox_publish_duration_seconds"), hist_buckets(before, "outbox_publish_duration_seconds"))
    rates = {k: [v for _, v in counter_deltas(ctx.samples, k)] for k in ("outbox_published", "consumer_events")}
    lag_k6 = s.get("expiry_peak_lag", "max")
    lag_server = max(max((r["consumer_lag"] for r in ctx.samples if r.get("consumer_lag") is not None), default=0),
                     s.get("expiry_server_consumer_lag", "max") or 0)
    events_before = counter_by(before, "consumer_events_total", "outcome")
    return {
        "seconds_after_expiry": views,
        "sql_seconds_after_expiry": {"reservations_expired_s": first(lambda r: r["reservations_held"] == 0),
                                     "events_published_s": first(lambda r: r["expired_events"] >= holds_made and r["expired_unpublished"] == 0),
                                     "seats_back_s": first(lambda r: r["seats_held"] == 0)},
        "sql_samples_after_expiry": sum(1 for r in sql_rows if (r.get("t_ms") or 0) >= expires_at), "sql_rows": sql_rows,
        "holds_made": holds_made, "seats_held": ctx.env_int("SEATS_HELD", 0),
        "relay_events_per_s": holds_made / views["relayed"] if views["relayed"] else None,
        "relay_peak_per_s": max(rates["outbox_published"], default=None),
        "consumer_events_per_s": holds_made / views["consumed"] if views["consumed"] else None,
        "consumer_peak_per_s": max(rates["consumer_events"], default=None),
        "peak_lag": max(lag_k6 or 0, lag_server or 0), "peak_lag_k6": lag_k6, "peak_lag_server_gauge": lag_server,
        "released_by": {k: delta("seats_released_total", {"by": k}) or 0 for k in ("consumer", "backstop")},
        "consumer_events": {k: v - events_before.get(k, 0) for k, v in counter_by(prom, "consumer_events_total", "outcome").items()},
        "published": delta("outbox_published_total"), "holds_expired": delta("holds_expired_total"),
        "publish_p50_s_le": bucket_quantile(pub, 0.5), "publish_p99_s_le": bucket_quantile(pub, 0.99),
        "expiry_release_latency_s": {"count": lat_n, "mean": lat_sum / lat_n if lat_n else None,
                                     "p50_le": bucket_quantile(latency, 0.5), "p95_le": bucket_quantile(latency, 0.95),
                                     "p99_le": bucket_quantile(latency, 0.99),
                                     "buckets": {str(k): v for k, v in sorted(latency.items())}},
    }


def counter_deltas(rows, key):
    """Per-sample increases per second of a cumulative counter column: [(t, rate)]."""
    out, prev = [], None
    for r in rows:
        if r.get(key) is None:
            continue
        if prev is not None and r["t"] > prev[0]:
            out.append((r["t"], max(0.0, (r[key] - prev[1]) / (r["t"] - prev[0]))))
        prev = (r["t"], r[key])
    return out


def labels(s, views, target, lag):
    return {
        ("expiry_released_seconds", f"max<{target:g}"): (f"every seat released (server counters) within {target:g} s", secs(views["released"])),
        ("expiry_api_available_seconds", f"max<{target:g}"): (f"API `availableSeats` shows every seat within {target:g} s", secs(views["api"])),
        ("expiry_seatmap_available_seconds", f"max<{target:g}"): (f"the seat map shows every seat AVAILABLE within {target:g} s",
                                                                 secs(views["seat_map"])),
        ("expiry_not_back", "count<1"): ("no view still missing seats when the watch ended", f"{s.count('expiry_not_back')}"),
        ("expiry_peak_lag", "max<1000"): ("peak consumer lag < 1,000 messages (success criteria)", n0(lag)),
    }


def stage_table(v, q, seats):
    rows = [["every hold marked EXPIRED (sweeper)", secs(v["swept"]), secs(q["reservations_expired_s"])],
            ["every seats.expired event published to Kafka (relay)", secs(v["relayed"]), secs(q["events_published_s"])],
            ["every event handled (consumer)", secs(v["consumed"]), ""],
            ["every seat released (no seat HELD)", secs(v["released"]), f"**{secs(q['seats_back_s'])}**"],
            [f"API `availableSeats` = {seats:,}", f"{secs(v['api'])} (GraphQL, every 0.25 s)", ""],
            ["seat map: every seat AVAILABLE", f"{secs(v['seat_map'])} (GraphQL, every 1 s)", ""]]
    return Table(["stage", "server counters (k6, 1 s)", "database (SQL, ~0.5 s)"], rows,
                 "Seconds after the expiry instant when each stage had finished the whole batch:")


def pipeline_rows(s, r):
    lat = r["expiry_release_latency_s"]
    return [
        ["producer throughput (relay → Kafka)", f"{num(r['relay_events_per_s'], 0)} events/s from the expiry to the last publish; "
         f"peak {num(r['relay_peak_per_s'], 0)}/s in a 1 s sample"],
        ["consumer throughput", f"{num(r['consumer_events_per_s'], 0)} events/s from the expiry to the last event handled; "
         f"peak {num(r['consumer_peak_per_s'], 0)}/s"],
        ["peak consumer lag (published, not consumed)", f"{n0(r['peak_lag_k6'])} (k6); server gauge `consumer_lag` {n0(r['peak_lag_server_gauge'])}"],
        ["events published during the watch / holds expired (server)", f"{n0(r['published'])} / {n0(r['holds_expired'])}"],
        ["consumer events by outcome", counts(r["consumer_events"])],
        ["seats released by the consumer / by the backstop", f"{r['released_by']['consumer']:,.0f} / {r['released_by']['backstop']:,.0f}"],
        ["expiry → release latency (`expiry_release_latency_seconds`) mean / P50 / P95 / P99",
         f"{num((lat['mean'] or 0) * 1000 if lat['mean'] is not None else None, 0, ' ms')} / "
         + " / ".join(le_ms(lat[k]) for k in ("p50_le", "p95_le", "p99_le"))],
        ["relay publish of one batch (`outbox_publish_duration_seconds`) P50 / P99",
         f"{le_ms(r['publish_p50_s_le'])} / {le_ms(r['publish_p99_s_le'])}"],
        ["watch requests: availableSeats P95 / seat map P95", f"{ms(s.get('http_req_duration{op:availableSeats}', 'p(95)'))} / "
         f"{ms(s.get('http_req_duration{op:schedule}', 'p(95)'))}"],
    ]


def latency_table(buckets):
    ordered = sorted((float(k), v) for k, v in buckets.items())
    total = ordered[-1][1] if ordered else 0
    rows, prev = [], 0
    for le, c in ordered:
        if c - prev or le == float("inf"):
            rows.append(["+Inf" if le == float("inf") else f"{le:g} s", f"{c - prev:,.0f}", f"{num(100 * c / total if total else None, 1)} %"])
        prev = c
    return Table(["≤ bound", "in bucket", "cumulative"], rows, "End-to-end latency, hold expiry → seats back on sale "
                 "(`expiry_release_latency_seconds`, one observation per hold the consumer released):")


def sql_timeline(ctx, r):
    expires_at = ctx.env_int("EXPIRES_AT_MS", 0)
    rows = [q for q in r.pop("sql_rows") if (q.get("t_ms") or 0) >= expires_at - 2000][:40]
    return Table(["s after expiry", "seats HELD", "reservations HELD", "seats.expired events", "of them unpublished"],
                 [[f"{(q['t_ms'] - expires_at) / 1000:.1f}", n0(q["seats_held"]), n0(q["reservations_held"]),
                   n0(q["expired_events"]), n0(q["expired_unpublished"])] for q in rows], "Database timeline (SQL poll):")
