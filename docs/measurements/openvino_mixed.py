"""OpenVINO in bf16 with Kokoro's fragile parts in f32, by cutting the graph into five parts
compiled at their own precision (latency issue, part 4; figures in docs/gpu.md).

    .venv/bin/python docs/measurements/openvino_mixed.py prepare MODEL WORK [--threads 2]
    OV/bin/python    docs/measurements/openvino_mixed.py run WORK [--threads 2] [--repeats 3] [--via ort-ep]
    .venv/bin/python docs/measurements/openvino_mixed.py score WORK [--via ort-ep]

``prepare`` (kopt's venv) cuts MODEL (an fp32 Kokoro graph with the STFT as a Conv: ``kopt optimize
reference --pass stft-conv``) into ``kopt.optimize.precision_parts``' five parts: **front** (text
encoder, durations, F0/N), **decoder** (the frame-rate AdaIN blocks), **source** (the harmonic
source, its STFT, magnitude and phase), **body** (the generator's upsampling, resblocks and noise
branches) and **tail** (conv_post and the iSTFT); it writes the
feeds of three texts and the whole model's audio on onnxruntime's CPU provider (the reference). ``run`` (a venv with the ``openvino`` package and numpy; ``--via ort-ep``: with
onnxruntime-openvino, one session per part on its provider) compiles the parts for each precision
plan, runs them in turns with the whole model on the CPU provider of that venv's onnxruntime
(the speed baseline, measured side by side), and keeps each plan's audio and times. ``score`` gives
sample-aligned PESQ-wb of each plan against the CPU provider's audio.

Why cut: OpenVINO's CPU plugin takes one inference precision per compiled model. Marking nodes
``disable_fp16_compression`` (from Python, or as the attribute in an IR file) left them in bf16 in
OpenVINO 2026.4 (a MatMul marked so still ran in bf16), so a graph cannot say which parts stay f32.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

PARTS = ("front", "decoder", "source", "body", "tail")   # kopt.optimize.precision_parts.PARTS
MIXED = {"front": "f32", "decoder": "bf16", "source": "f32", "body": "bf16", "tail": "f32"}  # its MIXED_BF16
PLANS = {                                   # precision per part
    "f32": dict.fromkeys(PARTS, "f32"),
    "bf16": dict.fromkeys(PARTS, "bf16"),
    "mixed": MIXED,
    "mixed-tail-bf16": {**MIXED, "tail": "bf16"},
    "mixed-front-bf16": {**MIXED, "front": "bf16"},
    "mixed-source-bf16": {**MIXED, "source": "bf16"},
}
TEXTS = ("short-1", "medium-1", "ja-1")


def prepare(model_path: Path, work: Path, threads: int) -> None:
    import numpy as np
    import onnx
    import onnxruntime as ort

    from kokoro_runtime.feed import pad, style_row
    from kokoro_runtime.synth import Synthesizer, load_vocab_dict
    from kopt.bench.textset import load_textset
    from kopt.optimize.precision_parts import MIXED_BF16, save, split
    from kopt.source.fetch import embedded_paths

    assert MIXED == MIXED_BF16
    work.mkdir(parents=True, exist_ok=True)
    save(split(onnx.load(str(model_path)), str(model_path)), work)
    _, voices_path, vocab_path, _ = embedded_paths()
    vocab = load_vocab_dict(json.loads(Path(vocab_path).read_text(encoding="utf-8")), str(vocab_path))
    tts = Synthesizer(model_path, voices_path, vocab=vocab, threads=threads)
    texts = {t.id: (t.text, "en-us") for t in load_textset().items if t.id in TEXTS}
    texts["ja-1"] = ("図書館は朝九時に開きます。週末には子ども向けの小さな教室があります。", "ja")
    pack = tts.voice_array("jf_alpha")
    for k, (text, lang) in texts.items():   # the reference audio: the whole model on the CPU provider
        ids = pad(list(tts.text_to_chunks(text, False, lang)[0].tokens))
        feeds = tts.signature.feeds(ids, style_row(pack, ids.shape[1] - 2), 1.0)
        np.savez(work / f"feeds-{k}.npz", **feeds)
        np.save(work / f"ref-{k}.npy", np.asarray(tts.session.run(None, feeds)[0], np.float32).reshape(-1))
    (work / "cpu.json").write_text(json.dumps({"threads": threads, "onnxruntime": ort.__version__,
                                               "model": str(model_path.resolve())}, indent=1), encoding="utf-8")
    print(json.dumps({"parts": str(work / "parts.json"), "texts": list(texts)}, indent=1))


def _openvino(work: Path, part: str, prec: str, threads: int):
    """The part compiled by the openvino package: feeds -> {output name: array}."""
    import numpy as np
    import openvino as ov

    cm = ov.Core().compile_model(str(work / f"{part}.onnx"), "CPU",
                                 {"INFERENCE_PRECISION_HINT": prec, "INFERENCE_NUM_THREADS": threads})
    return lambda feeds: {o.get_any_name(): np.asarray(v) for o, v in cm(feeds).items()}


def _ort_ep(work: Path, part: str, prec: str, threads: int):
    """The part as an onnxruntime session on onnxruntime-openvino's provider, as kopt's openvino
    presets configure it (device CPU, the precision in load_config)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    po = {"device_type": "CPU", "num_of_threads": str(threads),
          "load_config": json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": prec}})}
    s = ort.InferenceSession(str(work / f"{part}.onnx"), opts, providers=[("OpenVINOExecutionProvider", po)])
    names = [o.name for o in s.get_outputs()]
    return lambda feeds: dict(zip(names, s.run(None, feeds)))


def run(work: Path, threads: int, repeats: int, via: str) -> None:
    import numpy as np

    layout = json.loads((work / "parts.json").read_text(encoding="utf-8"))["parts"]
    cpu = json.loads((work / "cpu.json").read_text(encoding="utf-8"))
    make = _openvino if via == "openvino" else _ort_ep
    compiled = {(part, prec): make(work, part, prec, threads) for part in PARTS for prec in ("f32", "bf16")}

    def speak(plan: dict[str, str], feeds: dict) -> tuple[np.ndarray, dict[str, float]]:
        env, lap = dict(feeds), {}
        for part in PARTS:
            t = time.perf_counter()
            env.update(compiled[part, plan[part]]({k: env[k] for k in layout[part]["inputs"]}))
            lap[part] = time.perf_counter() - t
        return np.asarray(env[layout["tail"]["outputs"][0]], np.float32).reshape(-1), lap

    import onnxruntime as ort  # the whole model on its CPU provider, in the same turns

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    whole = ort.InferenceSession(cpu["model"], opts, providers=["CPUExecutionProvider"])
    out: dict[str, dict] = {}
    for k in TEXTS:
        feeds = dict(np.load(work / f"feeds-{k}.npz"))
        laps: dict[str, list[dict[str, float]]] = {p: [] for p in PLANS}
        base: list[float] = []
        whole.run(None, feeds)
        for p, plan in PLANS.items():                 # warm-up, and the audio kept
            np.save(work / f"{via}-{p}-{k}.npy", speak(plan, feeds)[0])
        for i in range(repeats):                      # the plans and the CPU provider take turns
            for p in (list(PLANS) if i % 2 == 0 else list(PLANS)[::-1]):
                laps[p].append(speak(PLANS[p], feeds)[1])
            t = time.perf_counter()
            whole.run(None, feeds)
            base.append(time.perf_counter() - t)
        out[k] = {p: {"total_s": round(statistics.median(sum(lap.values()) for lap in ls), 3),
                      **{part: round(statistics.median(lap[part] for lap in ls), 3) for part in PARTS}}
                  for p, ls in laps.items()}
        out[k]["cpu-provider"] = {"total_s": round(statistics.median(base), 3)}
    if via == "openvino":
        import openvino as ov

        version = {"openvino": ov.__version__}
    else:
        import onnxruntime as ort

        version = {"onnxruntime-openvino": ort.__version__}
    res = {**version, "onnxruntime_cpu": ort.__version__, "via": via, "threads": threads, "repeats": repeats,
           "plans": PLANS, "times": out}
    (work / f"run-{via}.json").write_text(json.dumps(res, indent=1), encoding="utf-8")
    print(json.dumps(res["times"], indent=1))


def score(work: Path, via: str) -> None:
    import numpy as np

    from kopt.quality.metrics.intrusive import pesq_wb

    res = json.loads((work / f"run-{via}.json").read_text(encoding="utf-8"))
    rows = {}
    for p in PLANS:
        row: dict[str, object] = {}
        for k in TEXTS:
            ref, y = np.load(work / f"ref-{k}.npy"), np.load(work / f"{via}-{p}-{k}.npy")
            row[k] = ("NaN" if not np.isfinite(y).all()
                      else round(pesq_wb(ref, y, 24000, aligned=True)["pesq_wb"], 2))
            t = res["times"][k]
            row[f"{k}_speedup_vs_cpu"] = round(t["cpu-provider"]["total_s"] / t[p]["total_s"], 2)
        rows[p] = row
    (work / f"score-{via}.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print(json.dumps(rows, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("prepare")
    a.add_argument("model", type=Path)
    a.add_argument("work", type=Path)
    a.add_argument("--threads", type=int, default=2)
    r = sub.add_parser("run")
    r.add_argument("work", type=Path)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--repeats", type=int, default=3)
    s = sub.add_parser("score")
    s.add_argument("work", type=Path)
    for q in (r, s):
        q.add_argument("--via", choices=("openvino", "ort-ep"), default="openvino",
                       help="the openvino package, or onnxruntime-openvino's provider (one session per part)")
    args = p.parse_args()
    if args.cmd == "prepare":
        prepare(args.model, args.work, args.threads)
    elif args.cmd == "run":
        run(args.work, args.threads, args.repeats, args.via)
    else:
        score(args.work, args.via)


if __name__ == "__main__":
    main()
