"""The published bundle as its users run it (``kind: "bundle"`` records from ``kopt bundle-bench`` and
the build's bundle step): the targets, met or not, and the server under 1-8 concurrent clients."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from kopt.core.results import ResultRecord
from kopt.publish.coldstart import BREAKDOWN_NAMES, breakdown_text

# (metric, label, target, direction): the runtime's targets on a 2-core CPU
TARGETS = (
    ("http_ttfa_ms", "warm TTFA over HTTP (request sent -> first audio byte), ms", 150.0, "max"),
    ("say_warm_ms", "say with a warm daemon, process start -> first audio, ms", 300.0, "max"),
    ("throughput_8_vs_best_1", "throughput at 8 clients / best single-client throughput", 0.9, "min"),
    ("cold_start_s", "one-shot command, process start -> first audio, s", 1.0, "max"),
)
INFO = (
    ("cold_start_first_s", "one-shot, first run on a machine (optimizes and keeps the graph), s"),
    ("warm_ttfa_ms", "library warm TTFA (stream() -> first chunk), ms"),
    ("http_latency_ms", "HTTP whole response, ms"),
    ("say_cached_ms", "say, repeated text (the daemon's audio cache), ms"),
    ("say_cold_ms", "say with no daemon running (starts one), ms"),
    ("server_rss_mb", "server RSS after the load runs, MB"),
)


def latest_bundle_record(records: Sequence[ResultRecord]) -> ResultRecord | None:
    recs = [r for r in records if r.kind == "bundle"]
    return max(recs, key=lambda r: r.time) if recs else None


def targets_frame(rec: ResultRecord) -> pd.DataFrame:
    m = rec.metrics
    rows = []
    for key, label, target, direction in TARGETS:
        v = m.get(key)
        met = None if v is None else (v <= target if direction == "max" else v >= target)
        rows.append({"figure": label, "measured": v, "target": f"{'<=' if direction == 'max' else '>='} {target:g}",
                     "met": "-" if met is None else ("yes" if met else "no")})
    for key, label in INFO:
        if m.get(key) is not None:
            rows.append({"figure": label, "measured": m[key], "target": "", "met": ""})
    bd = {k: float(v) for k in BREAKDOWN_NAMES if (v := m.get(f"cold_{k}_s")) is not None}
    if bd:
        rows.append({"figure": "one-shot cold start, where it goes (s)", "measured": breakdown_text(bd), "target": "",
                     "met": ""})
    return pd.DataFrame(rows)


def load_frame(rec: ResultRecord) -> pd.DataFrame:
    load = ((rec.extra or {}).get("bundle_bench") or {}).get("load") or []
    cols = ["instances", "threads", "clients", "requests", "ok", "busy_503", "errors", "throughput_x",
            "ttfa_ms_p50", "ttfa_ms_p95", "latency_ms_p50", "latency_ms_p95"]
    df = pd.DataFrame([{c: row.get(c) for c in cols} for row in load], columns=cols)
    for c in ("instances", "threads", "clients", "requests", "ok", "busy_503", "errors"):
        df[c] = df[c].astype("Int64")
    return df


def markdown(rec: ResultRecord) -> str:
    v = rec.variant
    head = (f"\n## The published bundle, as its users run it\n\n{v.name} (`{str(v.key)[:12]}`), "
            f"{rec.threads or 'default'} threads, machine {rec.machine.id[:8]}; "
            "`kopt bundle-bench` (the build's bundle step).\n\n")
    out = head + targets_frame(rec).to_markdown(index=False) + "\n"
    lf = load_frame(rec)
    if not lf.empty:
        out += "\nThe HTTP server under concurrent clients (streamed PCM, audio cache off):\n\n"
        out += lf.to_markdown(index=False) + "\n"
    return out
