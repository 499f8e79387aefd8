"""How numbers look in a report's tables."""

import math


def num(v, digits=1, unit=""):
    if v is None or (isinstance(v, float) and (math.isinf(v) or math.isnan(v))):
        return "n/a"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and digits == 0):
        return f"{int(v):,}{unit}"
    return f"{v:,.{digits}f}{unit}"


def n0(v):
    return num(v, 0)


def ms(v):
    return num(v, 1, " ms")


def secs(v):
    return num(v, 1, " s")


def pct(rate, digits=3):
    """A 0..1 rate as a percentage."""
    return f"{num((rate or 0) * 100, digits)} %"


def le_s(v):
    if v is None:
        return "n/a"
    return f"{v} s" if isinstance(v, str) else f"≤ {v:g} s"


def le_ms(v):
    if v is None:
        return "n/a"
    return f"{v} s" if isinstance(v, str) else f"≤ {v * 1000:g} ms"


def in_server(d):
    """An operation's P50 / P95 / P99 inside the server's GraphQL handler (metrics.server_latency)."""
    le = d.get("server_s_le") or {}
    return " / ".join(le_ms(le.get(q)) for q in ("p50", "p95", "p99"))


def pass_fail(ok):
    if ok is None:
        return "info"
    return "PASS" if ok else "**FAIL**"


def lat_row(d, keys=("med", "p(95)", "p(99)", "max")):
    """"P50 / P95 / P99 / max" of a k6 latency dict, in ms."""
    return " / ".join(ms((d or {}).get(k)) for k in keys)


def counts(d, code=False):
    """"a 3, b 2" of a {name: count} dict ("none" when empty)."""
    if not d:
        return "none"
    return ", ".join(f"`{k}` {num(v, 0)}" if code else f"{k or 'all'} {num(v, 0)}" for k, v in d.items())
