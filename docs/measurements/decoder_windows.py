"""Stream Kokoro's decoder by frames? (latency issue, part 1): split the fp32 graph into a front (text
encoder, durations, F0/N predictors) and a back (decoder + iSTFT vocoder), time both, and run the
back over overlapping windows of frames, stitched with linear crossfades, against the back's
whole-sentence audio.

    .venv/bin/python docs/measurements/decoder_windows.py [--store /tmp/kart] [--work /tmp/kopt-decoder-windows]
        [--text medium-1] [--repeats 5] [--skip-timing]
    OMP_NUM_THREADS=1 .venv/bin/python docs/measurements/decoder_windows.py --stream [--threads 1]

The cut and its rewrites are the library's (``kopt.optimize.frame_stream``): the front outputs the
tensors the decoder reads from the encoder (asr [1, 512, T], the F0 and N curves [1, 2T]); the back
takes them and the style vector. The measured variants of the back:

- ``stats``: every instance normalization of the back (ReduceMean(x), Sub, square, ReduceMean)
  reads its mean and variance from graph inputs instead of its own ReduceMeans (``feed_stats``;
  fed with the whole sentence's values: an oracle, since computing them takes a whole-sentence
  back pass);
- ``phase``: the harmonic source's CumSum gets an offset input added to its output
  (``carry_phase``; the offset is the sentence's cumulative phase before the window, from a small
  "source" model cut from the back here: F0 -> CumSum);
- both; and the frame-stats and calibration graphs (``stats_graph``).

``--stream`` runs only the library end to end instead (``stream_check``): the three graphs,
calibration, and the runtime's windows (``kokoro_runtime.frames``).

Windows of W frames (asr frames, 600 samples each at 24 kHz) start every W - O frames; each window's
audio is weighted by linear ramps over its overlaps and the weighted sum normalized. Scores: max
absolute sample error, SNR and PESQ-wb (kopt.quality's "pesq" metric: 24k -> 16k, same length:
the windows share the front's durations, so the audio is aligned by construction).

Not a test: timings move with the machine and its load (1 thread where they do not matter).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort

from kopt.bench.textset import load_textset
from kopt.core.graph import infer_shapes
from kopt.core.kokoro import KokoroIO, open_session, style_of
from kopt.core.refs import resolve
from kopt.core.runner import style_pack
from kopt.core.store import ArtifactStore
from kopt.optimize import frame_stream
from kopt.quality.registry import get as quality_metric

SR = 24000
pesq_wb = quality_metric("pesq").fn  # kopt.quality's PESQ-wb: 24k -> 16k (polyphase), then pesq's wb mode


# ---------------------------------------------------------------- the split (kopt.optimize.frame_stream)

def back_model(proto: onnx.ModelProto, shapes: dict, stats: bool = False, phase: bool = False,
               extra_outputs: str = "") -> tuple[ir.Model, dict]:
    """The back (the library's cut): inputs asr, f0, n, style (+ every norm's statistics, + the phase
    offset); output audio. ``extra_outputs``: "stats" every norm's mean/var instead (the library's
    calibration graph), "frame_stats" the frame-rate norms' (its frame-stats graph), "cumsum" the
    harmonic source's CumSum (the source model)."""
    if extra_outputs in ("stats", "frame_stats"):
        m = frame_stream.stats_graph(proto, "all" if extra_outputs == "stats" else "frame-rate", shapes)
        return m, {}
    m, norms, asr = frame_stream.cut_back(proto, shapes)
    g = m.graph
    info: dict = {"norms": len(norms), "norm_where": [nm.site for nm in norms]}
    if extra_outputs == "cumsum":
        cumsum = next(n for n in g if n.op_type == "CumSum" and (n.name or "").startswith("/decoder/"))
        g.outputs.clear()
        cs = cumsum.outputs[0]
        cs.name = "cumsum"
        cs.type = ir.TensorType(ir.DataType.FLOAT)
        g.outputs.append(cs)
        return frame_stream.finish(m, "source"), info
    if stats:
        frame_stream.feed_stats(g, norms)
    if phase:
        frame_stream.carry_phase(g, asr, shapes)
        # phase_carry is no output here (the offsets come from the source model): its nodes go, and carry_at with them
        g.inputs.remove(next(v for v in g.inputs if v.name == "carry_at"))
    return frame_stream.finish(m, "back"), info


def save_checked(model: ir.Model, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ir.save(model, str(path))
    onnx.checker.check_model(str(path))
    return path


# ---------------------------------------------------------------- running

def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    return open_session(path, threads=threads)


def run_back(sess: ort.InferenceSession, feats: dict, a: int, b: int, extra: dict | None = None) -> np.ndarray:
    feeds = {"asr": feats["asr"][:, :, a:b], "f0": feats["f0"][:, 2 * a:2 * b], "n": feats["n"][:, 2 * a:2 * b],
             "style": feats["style"]}
    if extra:
        feeds.update(extra)
    return sess.run(["audio"], feeds)[0].reshape(-1)


def windows(total: int, w: int, o: int) -> list[tuple[int, int]]:
    out, s = [], 0
    while True:
        e = min(s + w, total)
        out.append((s, e))
        if e >= total:
            return out
        s = e - o


def stitch(parts: list[tuple[int, int, np.ndarray]], total: int, rate: int) -> np.ndarray:
    y, wsum = np.zeros(total * rate), np.zeros(total * rate)
    for k, (a, b, audio) in enumerate(parts):
        w = np.ones(len(audio))
        if k > 0:
            ov = (parts[k - 1][1] - a) * rate
            w[:ov] = np.linspace(0, 1, ov + 2)[1:-1]
        if k + 1 < len(parts):
            ov = (b - parts[k + 1][0]) * rate
            w[len(w) - ov:] = np.linspace(1, 0, ov + 2)[1:-1]
        y[a * rate:a * rate + len(audio)] += w * audio
        wsum[a * rate:a * rate + len(audio)] += w
    return y / np.maximum(wsum, 1e-12)


@dataclass
class Score:
    max_err: float
    snr_db: float
    pesq: float


def score(ref: np.ndarray, deg: np.ndarray) -> Score:
    err = deg - ref
    snr = 10 * np.log10(np.sum(ref ** 2) / max(np.sum(err ** 2), 1e-30))
    return Score(float(np.max(np.abs(err))), float(snr), pesq_wb(ref, deg, SR)["pesq_wb"])


def median_s(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def stream_check(a: argparse.Namespace, store: ArtifactStore, ref: Path) -> dict:
    """The library end to end: ``frame_stream.build`` + ``save``, the generator's statistics from
    ``frame_stream.calibrate`` over the calibration sentences (the first voice), then
    ``kokoro_runtime.frames.FrameStream`` (default schedule 40, 80, 160... / 16) on ``--text`` at
    ``--threads``. Scores the stitched audio against the whole model's and against the back run
    whole with the same statistics (the windowing alone); times the first chunk (front, stats, first
    window) and the whole model, each after one untimed run."""
    from kokoro_runtime.frames import FrameStream

    proto = onnx.load(str(ref))
    folder = Path(a.work) / "frame_stream"
    frame_stream.save(frame_stream.build(proto), folder)
    stream = FrameStream.open(folder, threads=a.threads)
    full = session(ref, a.threads)
    pack = style_pack(store)
    io = KokoroIO.of(full, ref)

    def feeds_of(text_id: str) -> dict:
        item = load_textset().select(ids=[text_id])[0]
        return io.feeds(np.asarray(item.tokens), style_of(pack, len(item.ids)).reshape(1, 256).astype(np.float32))

    runs = [stream.features(feeds_of(c)) for c in a.calib_texts.split(",")]
    calib = frame_stream.calibrate(proto, runs, threads=a.threads)
    del proto
    feeds = feeds_of(a.text)

    def first_chunk() -> tuple[float, list[np.ndarray]]:
        t0 = time.perf_counter()
        chunks = []
        for c in stream.stream(feeds, calib):
            if not chunks:
                ttfa = time.perf_counter() - t0
            chunks.append(c)
        return ttfa, chunks

    first_chunk()
    ttfa, chunks = first_chunk()
    full.run(["audio"], feeds)
    t0 = time.perf_counter()
    audio_full = full.run(["audio"], feeds)[0].reshape(-1)
    t_full = time.perf_counter() - t0
    stitched = np.concatenate(chunks)
    whole_back = stream.whole(feeds, calib)
    res = {"text": a.text, "threads": a.threads, "frames": len(audio_full) // 600,
           "windows": stream.schedule.windows(len(audio_full) // 600), "calibrated_norms": len(calib) // 2,
           "ttfa_s": ttfa, "first_chunk_s": len(chunks[0]) / SR, "full_s": t_full,
           "vs_full": score(audio_full, stitched).__dict__, "vs_whole_back": score(whole_back, stitched).__dict__,
           "whole_back_vs_full": score(audio_full, whole_back).__dict__}
    print(json.dumps(res), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="/tmp/kart")
    ap.add_argument("--work", default="/tmp/kopt-decoder-windows")
    ap.add_argument("--text", default="medium-1")
    ap.add_argument("--calib-texts", default="medium-2,medium-3,short-1,short-2",
                    help="sentences whose stats stand in: bcal+c the first, bpool+c all of them pooled")
    ap.add_argument("--modes", default="a,b,c,b+c,bcal+c,bpool+c,bhyb+c",
                    help="a: window stats; b: the sentence's stats (oracle); c: phase carried; "
                         "bcal/bpool: calibrated stats; bhyb: frame-rate stats exact, generator's pooled")
    ap.add_argument("--grid", default="20:4,20:8,20:16,40:4,40:8,40:16,40:32,80:4,80:8,80:16,80:32,"
                    "160:4,160:8,160:16,160:32", help="window:overlap pairs, in frames")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--json", default=None, help="write the figures here")
    ap.add_argument("--stream", action="store_true", help="only the library check (stream_check)")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads of the --stream check")
    a = ap.parse_args()

    store = ArtifactStore(a.store)
    ref = resolve(store, "reference").file("model.onnx")
    if a.stream:
        res = stream_check(a, store, ref)
        if a.json:
            Path(a.json).write_text(json.dumps(res, indent=1))
        return
    work = Path(a.work)
    proto = onnx.load(str(ref))
    shapes = infer_shapes(proto)
    paths = {"front": save_checked(frame_stream.front_graph(proto, shapes), work / "front.onnx")}
    info: dict = {}
    for name, kw in (("back", {}), ("back_stats_out", {"extra_outputs": "stats"}),
                     ("source", {"extra_outputs": "cumsum"}), ("back_stats", {"stats": True}),
                     ("back_phase", {"phase": True}), ("back_both", {"stats": True, "phase": True}),
                     ("frame_stats", {"extra_outputs": "frame_stats"})):
        m, got = back_model(proto, shapes, **kw)
        info = got or info
        paths[name] = save_checked(m, work / f"{name}.onnx")
    print(f"back norms rewritten: {info['norms']}")

    item = load_textset().select(ids=[a.text])[0]
    pack = style_pack(store)
    style = style_of(pack, len(item.ids)).reshape(1, 256).astype(np.float32)
    full = session(ref)
    feeds = KokoroIO.of(full, ref).feeds(np.asarray(item.tokens), style)
    audio_full = full.run(["audio"], feeds)[0].reshape(-1)
    audio_again = full.run(["audio"], feeds)[0].reshape(-1)
    front = session(paths["front"])
    asr, f0, nn = front.run(["asr", "f0", "n"], {k: v for k, v in feeds.items() if k in ("tokens", "style", "speed")})
    feats = {"asr": asr, "f0": f0, "n": nn, "style": style}
    total = asr.shape[2]
    rate = len(audio_full) // total
    assert rate * total == len(audio_full) and f0.shape[1] == 2 * total, (asr.shape, f0.shape, len(audio_full))
    back = session(paths["back"])
    audio_split = run_back(back, feats, 0, total)
    res: dict = {"text": a.text, "tokens": len(item.tokens), "frames": total, "samples_per_frame": rate,
                 "full_vs_full_max": float(np.max(np.abs(audio_full - audio_again))),
                 "split_vs_full_max": float(np.max(np.abs(audio_split - audio_full)))}
    print(json.dumps(res))

    # the float floor: the whole sentence through the phase-offset back with an offset of a whole
    # number of turns (the same audio in exact arithmetic; only the CumSum's float rounding moves)
    bp = session(paths["back_phase"])
    res["floor"] = {str(off): score(audio_full, run_back(bp, feats, 0, total, {
        "phase_offset": np.full((1, 1, 9), off, np.float32)})).__dict__ for off in (1.0, 64.0)}
    print(json.dumps({"floor": res["floor"]}), flush=True)
    del bp

    # whole-sentence stats (oracle) and phase
    so = session(paths["back_stats_out"])
    outs = [o.name for o in so.get_outputs()]

    def stats_of(f: dict) -> dict[str, np.ndarray]:
        return {k: v for k, v in zip(outs, so.run(None, f)) if k.startswith("norm")}

    stats = stats_of(feats)
    cums = session(paths["source"]).run(["cumsum"], feats)[0]
    per = cums.shape[1] // total
    res["cumsum_shape"] = list(cums.shape)
    # the frame-rate stats pass: the decoder's encode/decode norms, exact, without the generator
    fs = session(paths["frame_stats"])
    fs_out = dict(zip([o.name for o in fs.get_outputs()], fs.run(None, feats)))
    res["frame_stats_norms"] = len(fs_out) // 2
    res["frame_stats_max_diff"] = float(max(np.max(np.abs(v - stats[k])) for k, v in fs_out.items()))

    # calibrated stats: other sentences' whole-sentence stats (same voice), alone and pooled
    calib = []
    for cid in a.calib_texts.split(","):
        citem = load_textset().select(ids=[cid])[0]
        cstyle = style_of(pack, len(citem.ids)).reshape(1, 256).astype(np.float32)
        cfeeds = KokoroIO.of(full, ref).feeds(np.asarray(citem.tokens), cstyle)
        casr, cf0, cn = front.run(["asr", "f0", "n"], cfeeds)
        calib.append((casr.shape[2], stats_of({"asr": casr, "f0": cf0, "n": cn, "style": cstyle})))
    frames = sum(t for t, _ in calib)
    pooled = {}
    for k in stats:
        if k.endswith("_mean"):
            v = k[:-5] + "_var"
            m = sum(t * s[k] for t, s in calib) / frames
            ex2 = sum(t * (s[v] + s[k] ** 2) for t, s in calib) / frames
            pooled[k], pooled[v] = m.astype(np.float32), (ex2 - m ** 2).astype(np.float32)
    hybrid = {**pooled, **fs_out}

    model_of = {"a": "back", "b": "back_stats", "c": "back_phase"}
    sessions = {m: session(paths[model_of.get(m, "back_both")]) for m in a.modes.split(",")}
    stats_for = {"b": stats, "b+c": stats, "bcal+c": calib[0][1], "bpool+c": pooled, "bhyb+c": hybrid}

    def extra_for(mode: str, s: int) -> dict:
        ex: dict = dict(stats_for.get(mode, {}))
        if "c" in mode:
            ex["phase_offset"] = (cums[:, s * per - 1:s * per, :] if s > 0 else np.zeros((1, 1, 9), np.float32))
        return ex

    table = []
    for w, o in (tuple(int(x) for x in pair.split(":")) for pair in a.grid.split(",") if pair):
        for mode, sess in sessions.items():
            parts = [(s, e, run_back(sess, feats, s, e, extra_for(mode, s))) for s, e in windows(total, w, o)]
            sc = score(audio_full, stitch(parts, total, rate))
            row = {"W": w, "O": o, "mode": mode, "windows": len(parts), **sc.__dict__}
            table.append(row)
            print(json.dumps(row), flush=True)
    res["table"] = table

    if not a.skip_timing:
        timing = {}
        for threads in (1, 2):
            fr = session(paths["front"], threads)
            bk = session(paths["back"], threads)
            fl = session(ref, threads)
            fst = session(paths["frame_stats"], threads)
            tf = median_s(lambda: fr.run(["asr", "f0", "n"], feeds), a.repeats)
            tb = median_s(lambda: run_back(bk, feats, 0, total), a.repeats)
            tfull = median_s(lambda: fl.run(["audio"], feeds), a.repeats)
            tfs = median_s(lambda: fst.run(None, feats), a.repeats)
            scale = {w: median_s(lambda w=w: run_back(bk, feats, 0, w), a.repeats) for w in (20, 40, 80, 160)}
            timing[threads] = {"front_s": tf, "back_s": tb, "full_s": tfull, "frame_stats_s": tfs,
                               "back_by_frames_s": scale}
            print(json.dumps({"threads": threads, **timing[threads]}), flush=True)
        res["timing"] = timing
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
