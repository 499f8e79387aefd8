"""PNG charts of a run, drawn from what it recorded (samples.tsv and metrics-series.jsonl):
latency percentiles, throughput, errors by code, queue and admissions, the outbox and consumer,
CPU and memory per process."""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from loadtest.metrics import bucket_quantile, hist_diff  # noqa: E402

POINTS = 60  # about this many points per line: windows of several samples on long runs
PROCESSES = (("server_cpu", "server"), ("pg_cpu", "PostgreSQL"), ("k6_cpu", "k6"), ("redis_cpu", "Redis"))


def _windows(series):
    """Consecutive (first, last) scrape pairs, about POINTS of them."""
    step = max(1, math.ceil(len(series) / POINTS))
    return [(series[i], series[min(i + step, len(series) - 1)]) for i in range(0, len(series) - 1, step)]


def latency_points(series):
    """[(t, p50_ms, p95_ms, p99_ms)] of the server's request latency histogram per window."""
    out = []
    for a, b in _windows(series):
        before = {float(k): v for k, v in (a.get("latency_buckets") or {}).items()}
        after = {float(k): v for k, v in (b.get("latency_buckets") or {}).items()}
        d = hist_diff(after, before)
        qs = [bucket_quantile(d, q, interpolate=True) for q in (0.5, 0.95, 0.99)]
        if qs[0] is not None:
            out.append((b["t"], *(1000 * q for q in qs)))
    return out


def rate_points(series, key):
    """[(t, per second)] of a counter in the series."""
    out = []
    for a, b in _windows(series):
        if a.get(key) is not None and b.get(key) is not None and b["t"] > a["t"]:
            out.append((b["t"], max(0.0, (b[key] - a[key]) / (b["t"] - a["t"]))))
    return out


def error_points(series):
    """{code: [(t, per second)]} of graphql_errors_total by code."""
    codes = sorted({c for s in series for c in (s.get("errors_by_code") or {})})
    out = {}
    for code in codes:
        pts = []
        for a, b in _windows(series):
            da = (a.get("errors_by_code") or {}).get(code, 0)
            db = (b.get("errors_by_code") or {}).get(code, 0)
            pts.append((b["t"], max(0.0, (db - da) / max(1e-9, b["t"] - a["t"]))))
        out[code] = pts
    return out


def _figure(title, ylabel):
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=90)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("seconds since k6 started")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def _save(fig, ax, path, charts, title):
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    charts.append({"title": title, "path": path})


def _lines(ax, points, labels):
    for i, label in enumerate(labels):
        ax.plot([p[0] for p in points], [p[i + 1] for p in points], label=label, linewidth=1.4)


def chart_latency(ctx, out_dir, charts):
    pts = latency_points(ctx.series)
    if not pts:
        return
    title = "Request latency in the server (graphql_request_duration_seconds, interpolated in buckets)"
    fig, ax = _figure(title, "ms")
    _lines(ax, pts, ("P50", "P95", "P99"))
    ax.set_yscale("log")
    _save(fig, ax, out_dir / "latency.png", charts, "latency percentiles over time")


def chart_throughput(ctx, out_dir, charts):
    reqs = rate_points(ctx.series, "requests")
    if not reqs:
        return
    fig, ax = _figure("Throughput: GraphQL requests per second (server)", "requests/s")
    _lines(ax, reqs, ("requests/s",))
    _save(fig, ax, out_dir / "throughput.png", charts, "throughput over time")


def chart_errors(ctx, out_dir, charts):
    if not ctx.series:
        return
    errs = error_points(ctx.series)
    fig, ax = _figure("Errors by code (graphql_errors_total, server)", "errors/s")
    for code, pts in errs.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=code, linewidth=1.4)
    if not errs:
        ax.text(0.5, 0.5, "no error answers", transform=ax.transAxes, ha="center", va="center")
        ax.set_xlim(0, max(1, ctx.series[-1]["t"]))
        ax.set_ylim(0, 1)
    _save(fig, ax, out_dir / "errors.png", charts, "errors by code over time")


def chart_queue(ctx, out_dir, charts):
    rows = [r for r in ctx.samples if r.get("waiting") is not None and r["waiting"] >= 0]
    admissions = rate_points(ctx.series, "admissions")
    if not any(r["waiting"] or r.get("active") for r in rows) and not any(v for _, v in admissions):
        return
    fig, ax = _figure("Queue: fans waiting and ACTIVE, admissions per second", "fans")
    if rows:
        ax.plot([r["t"] for r in rows], [r["waiting"] for r in rows], label="waiting", linewidth=1.4)
        ax.plot([r["t"] for r in rows], [r.get("active") or 0 for r in rows], label="ACTIVE", linewidth=1.4)
    if admissions:
        ax2 = ax.twinx()
        ax2.plot([p[0] for p in admissions], [p[1] for p in admissions], color="tab:green", linestyle="--",
                 label="admissions/s", linewidth=1.2)
        ax2.set_ylabel("admissions/s")
        ax2.legend(fontsize=8, loc="center right")
    _save(fig, ax, out_dir / "queue.png", charts, "queue depth and admission rate")


def chart_pipeline(ctx, out_dir, charts):
    """The expiry pipeline: outbox backlog, consumer lag, seats released per second."""
    rows = [r for r in ctx.samples if r.get("outbox_backlog") is not None]
    released = [(r["t"], (r.get("released_consumer") or 0) + (r.get("released_backstop") or 0)) for r in rows]
    rates = [(b[0], max(0.0, (b[1] - a[1]) / (b[0] - a[0]))) for a, b in zip(released, released[1:]) if b[0] > a[0]]
    if not any(r["outbox_backlog"] or r.get("consumer_lag") for r in rows) and not any(v for _, v in rates):
        return
    fig, ax = _figure("Outbox and consumer: backlog, lag, seats released per second", "events / seats")
    ax.plot([r["t"] for r in rows], [r["outbox_backlog"] for r in rows], label="outbox backlog", linewidth=1.4)
    ax.plot([r["t"] for r in rows], [r.get("consumer_lag") or 0 for r in rows], label="consumer lag", linewidth=1.4)
    ax.plot([p[0] for p in rates], [p[1] for p in rates], label="seats released/s", linewidth=1.2, linestyle="--")
    _save(fig, ax, out_dir / "pipeline.png", charts, "outbox backlog, consumer lag and releases over time")


def chart_cpu(ctx, out_dir, charts):
    rows = ctx.samples
    if not rows:
        return
    fig, ax = _figure("CPU per process (% of one core) and the whole machine", "% of one core")
    t = [r["t"] for r in rows]
    for key, label in PROCESSES:
        if any(r.get(key) is not None for r in rows):
            ax.plot(t, [r.get(key) or 0 for r in rows], label=label, linewidth=1.2)
    cores = ctx.machine["nproc"] or 1
    ax.plot(t, [(r.get("machine_busy") or 0) * cores for r in rows], label=f"machine ({cores} cores)",
            color="black", linestyle=":", linewidth=1.2)
    _save(fig, ax, out_dir / "cpu.png", charts, "CPU per process over time")


def chart_memory(ctx, out_dir, charts):
    rows = ctx.samples
    if not rows:
        return
    fig, ax = _figure("Memory (RSS) of the server and k6", "MB")
    t = [r["t"] for r in rows]
    for key, label in (("server_rss_kb", "server"), ("k6_rss_kb", "k6")):
        ax.plot(t, [(r.get(key) or 0) / 1024 for r in rows], label=label, linewidth=1.2)
    _save(fig, ax, out_dir / "memory.png", charts, "memory over time")


def draw(ctx, out):
    """Draws every chart the run has data for into the directory `out` (the report's path
    without its extension); returns [{"title", "path"}]."""
    out.mkdir(parents=True, exist_ok=True)
    charts = []
    for chart in (chart_latency, chart_throughput, chart_errors, chart_queue, chart_pipeline, chart_cpu, chart_memory):
        chart(ctx, out, charts)
    return charts
