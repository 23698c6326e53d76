"""Session settings kopt leaves at onnxruntime's defaults, timed: does the parallel executor
help on 2 cores (Sin and InstanceNormalization run on one thread, and Kokoro's three resblocks per
upsampling stage are independent branches), and what does the NhwcTransformer (int8 convs
channels-last) do for an int8 model?

    .venv/bin/python docs/measurements/session_modes.py MODEL [--store artifacts]

Times one medium sentence of the text set (the first, as ``kopt profile`` does) on MODEL, best of 3
after one untimed run, with kopt's session options: sequential execution at 2 intra-op threads
(what kopt and the runtime use), then ORT_PARALLEL with 2 inter-op threads and 2 or 1 intra-op
threads, and sequential at 2 threads with the NhwcTransformer disabled. Not a test: figures move with the machine and its load.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort

from kopt.bench.textset import load_textset
from kopt.core.kokoro import KokoroIO, options, style_of
from kopt.core.runner import style_pack
from kopt.core.store import ArtifactStore


def best_s(path: str, parallel: bool, intra: int, tokens: np.ndarray, style: np.ndarray,
           disabled: tuple[str, ...] = ()) -> float:
    so = options(intra, True)
    if parallel:
        so.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        so.inter_op_num_threads = 2
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"], disabled_optimizers=list(disabled))
    feeds = KokoroIO.of(sess, path).feeds(tokens, style)
    sess.run(None, feeds)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--store", default="artifacts")
    a = ap.parse_args()
    item = load_textset().select(["medium"])[0]
    tokens = np.asarray(item.tokens)
    style = style_of(style_pack(ArtifactStore(a.store)), len(item.tokens))
    for label, parallel, intra, disabled in (("sequential, 2 intra-op threads", False, 2, ()),
                                             ("parallel, 2 inter-op x 2 intra-op", True, 2, ()),
                                             ("parallel, 2 inter-op x 1 intra-op", True, 1, ()),
                                             ("sequential, NhwcTransformer off", False, 2, ("NhwcTransformer",))):
        ms = best_s(a.model, parallel, intra, tokens, style, disabled) * 1000
        print(f"{label:36s} {item.id}: {ms:7.0f} ms")


if __name__ == "__main__":
    main()
