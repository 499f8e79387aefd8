"""Reading what a run measured: the server's /metrics (Prometheus text, parsed by
prometheus_client), histogram quantiles (one function for every histogram) and k6's summary."""

import math
import re

from prometheus_client.parser import text_string_to_metric_families


def parse_prometheus(text):
    """Sample name -> [(labels, value)], e.g. "holds_total" -> [({"outcome": "held"}, 12.0)]."""
    out = {}
    try:
        families = list(text_string_to_metric_families(text or ""))
    except ValueError:
        return out
    for family in families:
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def _matches(labels, match):
    return not match or all(labels.get(k) == v for k, v in match.items())


def counter_sum(prom, name, match=None):
    """Sum of a metric over its label sets (None when the server has not recorded it)."""
    vals = [v for labels, v in prom.get(name, []) if _matches(labels, match)]
    return sum(vals) if vals else None


def counter_by(prom, name, label):
    out = {}
    for labels, v in prom.get(name, []):
        key = labels.get(label, "")
        out[key] = out.get(key, 0) + v
    return out


def hist_buckets(prom, name, match=None):
    """Cumulative bucket counts {le: count} of a histogram, summed over label sets."""
    out = {}
    for labels, value in prom.get(name + "_bucket", []):
        if _matches(labels, match):
            le = float(labels["le"])  # "+Inf" parses as inf
            out[le] = out.get(le, 0) + value
    return out


def hist_diff(after, before):
    return {le: c - before.get(le, 0) for le, c in after.items()}


def bucket_quantile(buckets, q, interpolate=False):
    """Quantile q of cumulative counts {upper bound: count}: the upper bound of the bucket that
    holds it ("> <last finite bound>" past the last one), or with `interpolate` a linear estimate
    inside that bucket, as Prometheus' histogram_quantile does; None without observations."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    finite = [le for le, _ in ordered if le != math.inf]
    lower, below = 0.0, 0
    for le, count in ordered:
        if count >= rank:
            if le == math.inf:
                return (finite[-1] if interpolate else f"> {finite[-1]:g}") if finite else None
            if interpolate and count > below:
                return lower + (le - lower) * (rank - below) / (count - below)
            return le
        lower, below = le, count
    return None


def hist_quantile(prom, name, q, match=None):
    return bucket_quantile(hist_buckets(prom, name, match), q)


def server_latency(per_op, prom):
    """Adds to each operation of k6's `per_op` its time inside the server, as the server measured
    it (`graphql_request_duration_seconds{operation}`: upper bounds of the buckets holding P50,
    P95 and P99, None without observations). The gap to k6's latency is time outside the
    GraphQL handler: in the kernel's queues, in hyper, and in the load client itself."""
    for op, d in per_op.items():
        d["server_s_le"] = {q: hist_quantile(prom, "graphql_request_duration_seconds", p, {"operation": op})
                            for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}
    return per_op


def hist_mean_ms(prom, name, before=None):
    """Mean of a seconds histogram in ms (minus the `before` scrape's observations)."""
    before = before or {}
    n = (counter_sum(prom, name + "_count") or 0) - (counter_sum(before, name + "_count") or 0)
    total = (counter_sum(prom, name + "_sum") or 0) - (counter_sum(before, name + "_sum") or 0)
    return 1000 * total / n if n else None


class Summary:
    """k6's --summary-export (legacy format): metric name (with tags) -> stats."""

    def __init__(self, data):
        data = data or {}
        self.metrics = data.get("metrics", {})
        self.state = data.get("state", {})

    def get(self, name, stat, default=None):
        m = self.metrics.get(name)
        if not m:
            return default
        if stat in m:
            return m[stat]
        return (m.get("values") or {}).get(stat, default)

    def count(self, name):
        return int(self.get(name, "count", 0) or 0)

    def thresholds(self):
        """[(metric, expression, passed)] (the legacy export says true when one FAILED)."""
        rows = []
        for name, m in self.metrics.items():
            for expr, value in (m.get("thresholds") or {}).items():
                failed = value.get("ok") is False if isinstance(value, dict) else bool(value)
                rows.append((name, expr, not failed))
        return rows

    def judged(self, order=()):
        """The thresholds that judge the run (not the `>=0` ones that only make k6 keep a
        tagged sub-metric), in `order` of metric names first."""
        plan = [t for t in self.thresholds() if not re.search(r">=0$", t[1])]
        rank = {name: i for i, name in enumerate(order)}
        return sorted(plan, key=lambda t: (rank.get(t[0], len(order)), t[1]))

    def latency(self, metric, stats=("med", "p(90)", "p(95)", "p(99)", "max")):
        return {k: self.get(metric, k) for k in stats}

    def tagged(self, metric, tag):
        """{value: count} of `metric{tag:value}` sub-metrics with a count, largest first."""
        out = {}
        pattern = re.compile(r"^" + re.escape(metric) + r"\{" + tag + r":([^}]+)\}$")
        for name in self.metrics:
            m = pattern.match(name)
            if m and self.count(name) > 0:
                out[m.group(1)] = self.count(name)
        return dict(sorted(out.items(), key=lambda x: -x[1]))

    def errors_by(self, label):
        return self.tagged("graphql_errors", label)

    def rate_counts(self, name):
        """(true samples, all samples) of a k6 Rate (failures, for the *_failed rates)."""
        t = self.get(name, "passes", 0) or 0
        f = self.get(name, "fails", 0) or 0
        return int(t), int(t + f)

    def windows(self, prefix):
        """The NN (as written) of the `<prefix>window:wNN}` sub-metrics with samples, in order
        (prefix e.g. "http_reqs{" or "http_req_duration{op:pay,")."""
        found = []
        pattern = re.compile(r"^" + re.escape(prefix) + r"window:w(\d+)\}$")
        for name in self.metrics:
            m = pattern.match(name)
            if m and self.get(name, "count"):
                found.append(m.group(1))
        return sorted(found, key=int)
