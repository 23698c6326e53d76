"""Time to first audio: the runtime's text-chunk stream against the frame stream, side by side.

Both paths run the same model (the fp32 reference of a kopt store) in one process, interleaved,
on the same texts of kopt's text set:

- **text chunks** (what the server does today): ``Synthesizer.render`` with its short first chunk;
  time to the first rendered chunk, and to the last;
- **frame stream** (``kokoro_runtime.frames``): the same text cut into the runtime's model-sized
  chunks (no short first chunk: the front sees the whole sentence), each chunk through the front,
  the frame-stats graph and the back over windows (40, 80, 160... frames, 16 of overlap); time to
  the first window's audio, and to the last.

The generator's statistics are calibrated on other sentences (``--calib-texts``) of the same
voice, as decoder_windows.py does. Writes one JSON object (``--json``) with every timing, the
machine and the versions. Usage:

    .venv/bin/python docs/measurements/frame_ttfa.py --threads 2 --json /tmp/frame_ttfa.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from kokoro_runtime.feed import style_row
from kokoro_runtime.frames import FrameStream
from kokoro_runtime.synth import Synthesizer
from kopt.bench.textset import load_textset
from kopt.core.env import machine
from kopt.core.kokoro import KokoroIO, open_session, style_of
from kopt.core.refs import resolve
from kopt.core.runner import style_pack
from kopt.core.store import ArtifactStore
from kopt.core.vocab import default_vocab
from kopt.optimize import frame_stream


def _text_chunks(synth: Synthesizer, text: str, voice: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    first = None
    for _ in synth.render(text, voice, lang="en-us"):
        if first is None:
            first = time.perf_counter() - t0
    return float(first or 0.0), time.perf_counter() - t0


def _frames(synth: Synthesizer, stream: FrameStream, io: KokoroIO, calib: dict, text: str, voice: str
            ) -> tuple[float, float]:
    pack = synth.voice_array(voice)
    t0 = time.perf_counter()
    first = None
    for chunk in synth.text_to_chunks(text, first_short=False, lang="en-us"):
        ids = np.asarray([0, *chunk.tokens, 0], np.int64)
        feeds = io.feeds(ids, style_row(pack, len(chunk.tokens)).reshape(1, 256).astype(np.float32))
        for _ in stream.stream(feeds, calib):
            if first is None:
                first = time.perf_counter() - t0
    return float(first or 0.0), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="/tmp/kart")
    ap.add_argument("--work", default="/tmp/kopt-frame-ttfa")
    ap.add_argument("--texts", default="short-1,medium-1,long-1")
    ap.add_argument("--calib-texts", default="medium-2,medium-3,short-2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    store = ArtifactStore(a.store)
    ref = resolve(store, "reference").file("model.onnx")
    folder = Path(a.work) / "frame_stream"
    proto = onnx.load(str(ref))
    frame_stream.save(frame_stream.build(proto), folder)
    stream = FrameStream.open(folder, threads=a.threads)
    pack = style_pack(store)
    voice = "probe"
    synth = Synthesizer(ref, {voice: pack}, vocab=default_vocab(), threads=a.threads)
    io = KokoroIO.of(open_session(ref, threads=1), ref)

    texts = load_textset()
    calib_runs = []
    for item in texts.select(ids=a.calib_texts.split(",")):
        feeds = io.feeds(np.asarray(item.tokens), style_of(pack, len(item.ids)).reshape(1, 256).astype(np.float32))
        calib_runs.append(stream.features(feeds))
    calib = frame_stream.calibrate(proto, calib_runs, threads=a.threads)
    del proto

    rows = []
    for item in texts.select(ids=a.texts.split(",")):
        _text_chunks(synth, item.text, voice)  # untimed warm-up of both paths on this length
        _frames(synth, stream, io, calib, item.text, voice)
        tc, fs = [], []
        for _ in range(a.repeats):  # interleaved, so a busy moment of the machine hits both
            tc.append(_text_chunks(synth, item.text, voice))
            fs.append(_frames(synth, stream, io, calib, item.text, voice))
        row = {"text": item.id, "tokens": len(item.tokens), "chunks": len(synth.text_to_chunks(item.text, lang="en-us")),
               "text_chunks_ttfa_s": statistics.median(t for t, _ in tc),
               "text_chunks_total_s": statistics.median(t for _, t in tc),
               "frames_ttfa_s": statistics.median(t for t, _ in fs),
               "frames_total_s": statistics.median(t for _, t in fs)}
        row["ttfa_ratio"] = row["frames_ttfa_s"] / row["text_chunks_ttfa_s"]
        row["total_ratio"] = row["frames_total_s"] / row["text_chunks_total_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    res = {"threads": a.threads, "repeats": a.repeats, "reference": str(ref), "rows": rows,
           "machine": machine(), "onnxruntime": ort.__version__, "python": platform.python_version()}
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
