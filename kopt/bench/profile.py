"""Where a variant's time goes, op by op: onnxruntime's profiler over timed runs of one text.

One session per variant (CPU EP, the given threads, ORT_ENABLE_ALL as the runtime uses it), one
untimed run, then ``runs`` profiled runs of one text-set item. Kernel times are summed per op type
(the op types onnxruntime ran, after its own fusions: QLinearConv, FusedConv, ...) and per node,
and divided by ``runs``. A ``profile`` record per variant holds the figures; ``compare`` lines two
profiles up op by op, which is how a pass's effect is shown ("the profile before and after").
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from kopt.bench.textset import TextItem
from kopt.bench.variants import Variant
from kopt.core.contract import SAMPLE_RATE


def profile_variant(v: Variant, item: TextItem, style: np.ndarray, threads: int = 2, runs: int = 3,
                    top: int = 15) -> dict[str, Any]:
    """Op-type and top-node kernel times (ms per run) of ``v`` on ``item``, with the run's wall time."""
    import onnxruntime as ort

    from kopt.core.kokoro import KokoroIO, options

    with tempfile.TemporaryDirectory(prefix="kopt-profile-") as d:
        sess = ort.InferenceSession(str(v.path), options(threads, True, profile_prefix=os.path.join(d, "p")),
                                    providers=["CPUExecutionProvider"])
        feeds = KokoroIO.of(sess, v.path).feeds(np.asarray(item.tokens), style)
        out = sess.run(None, feeds)  # untimed: first-run allocations stay out of the figures
        walls = []
        for _ in range(runs):
            t0 = time.perf_counter()
            sess.run(None, feeds)
            walls.append(time.perf_counter() - t0)
        events = json.loads(Path(sess.end_profiling()).read_text(encoding="utf-8"))
    run_starts = [e["ts"] for e in events if e.get("name") == "model_run"]
    start = run_starts[-runs]
    by_op: Counter[str] = Counter()
    nodes_of: dict[str, set[str]] = {}
    by_node: Counter[tuple[str, str]] = Counter()
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or e["ts"] < start:
            continue
        op = e.get("args", {}).get("op_name", "?")
        node = e["name"][: -len("_kernel_time")]
        by_op[op] += e["dur"]
        by_node[(node, op)] += e["dur"]
        nodes_of.setdefault(op, set()).add(node)
    total = sum(by_op.values()) or 1
    audio_s = out[0].size / SAMPLE_RATE
    return {
        "wall_s_median": float(np.median(walls)), "audio_s": audio_s, "rtf": float(np.median(walls)) / audio_s,
        "kernel_ms": total / runs / 1000,
        "ops": [{"op": op, "ms": us / runs / 1000, "share": us / total, "nodes": len(nodes_of[op])}
                for op, us in by_op.most_common()],
        "top_nodes": [{"node": n, "op": op, "ms": us / runs / 1000} for (n, op), us in by_node.most_common(top)],
    }


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Op by op, ``a`` then ``b``: ms per run each and the difference, biggest change first."""
    ma = {o["op"]: o for o in a["ops"]}
    mb = {o["op"]: o for o in b["ops"]}
    rows = []
    for op in set(ma) | set(mb):
        x, y = ma.get(op, {}).get("ms", 0.0), mb.get(op, {}).get("ms", 0.0)
        rows.append({"op": op, "ms_a": x, "ms_b": y, "delta_ms": y - x,
                     "nodes_a": ma.get(op, {}).get("nodes", 0), "nodes_b": mb.get(op, {}).get("nodes", 0)})
    return sorted(rows, key=lambda r: -abs(r["delta_ms"]))
