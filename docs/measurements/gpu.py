"""The Python half of docs/measurements/gpu.sh (see docs/gpu.md): the checks, the GPU wheels to install,
the variants' recipes, the refs, and the summary table. Each subcommand is one step of the script.

    python docs/measurements/gpu.py check                 can onnxruntime run a session on CUDA here? (exit 3: no)
    python docs/measurements/gpu.py ort-spec CUDA_MAJOR   the onnxruntime-gpu requirement for the driver's CUDA
    python docs/measurements/gpu.py trt-spec              the TensorRT libs wheel the installed onnxruntime-gpu links
    python docs/measurements/gpu.py libpath               folders of the pip-installed CUDA/cuDNN/TensorRT libraries
    python docs/measurements/gpu.py recipes DIR --text ID...   one recipe per variant, from recipes/default.toml
    python docs/measurements/gpu.py ref STORE OPTIMIZE_JSON    name a built variant in the store (a ref)
    python docs/measurements/gpu.py summary RESULTS_DIR        the table of the run's records

Only ``check`` and ``ort-spec`` run before the GPU wheels are installed; none of them builds a model.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIPPED = 3  # the script's exit status when there is nothing to measure on (docs/gpu.md)
# onnxruntime-gpu's PyPI wheels link one CUDA major each: 1.19-1.25 CUDA 12, 1.27 on CUDA 13 (their
# [cuda,cudnn] extras pull the matching nvidia-* wheels). The newest wheel for the driver's CUDA major:
ORT_GPU = {12: "onnxruntime-gpu[cuda,cudnn]>=1.21,<1.26", 13: "onnxruntime-gpu[cuda,cudnn]>=1.27"}
BASE_VARIANTS = ("fp16", "hybrid")  # built as recipes/default.toml defines them (hybrid: its winner)
BUCKETED = ("reference", "fp16")  # and with a static token length (bind-shapes bucket), beside the dynamic ones
BUILD_ORDER = ("fp16", "reference-b", "hybrid", "fp16-b")  # what a short time budget keeps first


def check() -> int:
    """0 if this onnxruntime has the CUDA EP and a one-node session really runs on it, else SKIPPED."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        print(f"skipped: onnxruntime-gpu not usable: onnxruntime does not import ({e})")
        return SKIPPED
    if hasattr(ort, "preload_dlls"):  # the CUDA/cuDNN wheels' libraries, when they are pip-installed
        try:
            ort.preload_dlls()
        except Exception as e:  # a missing library is reported by the session below
            print(f"note: onnxruntime.preload_dlls(): {e}")
    avail = ort.get_available_providers()
    build = f"onnxruntime {ort.__version__}, device {ort.get_device()}, providers: {', '.join(avail)}"
    if "CUDAExecutionProvider" not in avail:
        print(f"skipped: onnxruntime-gpu not usable: this onnxruntime is not a GPU build ({build})")
        return SKIPPED
    import numpy as np
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    try:
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CUDAExecutionProvider"])
        sess.run(None, {"x": np.array([-1, 0, 1, 2], np.float32)})
    except Exception as e:  # onnxruntime's own types: the driver, CUDA or cuDNN libraries
        print(f"skipped: onnxruntime-gpu not usable: a session on CUDA fails ({str(e).splitlines()[0][:300]})")
        return SKIPPED
    if sess.get_providers()[0] != "CUDAExecutionProvider":
        print(f"skipped: onnxruntime-gpu not usable: the session fell back to {sess.get_providers()} "
              "(CUDA or cuDNN libraries missing?)")
        return SKIPPED
    print(f"ok: CUDA sessions run ({build})")
    return 0


def ort_spec(cuda_major: int) -> str:
    known = sorted(ORT_GPU)
    return ORT_GPU[min(max(cuda_major, known[0]), known[-1])]


def _site_packages() -> Path:
    import onnxruntime

    return Path(onnxruntime.__file__).resolve().parents[1]


def trt_spec() -> str | None:
    """The tensorrt-cuXX-libs requirement matching the TensorRT and CUDA majors that the installed
    onnxruntime-gpu's TensorRT provider links (read from the library's dependency names), or None."""
    capi = _site_packages() / "onnxruntime" / "capi"
    lib = next(iter(capi.glob("libonnxruntime_providers_tensorrt.so*")), None)
    cuda_lib = next(iter(capi.glob("libonnxruntime_providers_cuda.so*")), None)
    if lib is None or cuda_lib is None:
        return None
    trt = re.search(rb"libnvinfer\.so\.(\d+)", lib.read_bytes())
    cuda = re.search(rb"libcudart\.so\.(\d+)", cuda_lib.read_bytes()) or re.search(rb"libcublas\.so\.(\d+)",
                                                                                 cuda_lib.read_bytes())
    if not trt or not cuda:
        return None
    major = int(trt.group(1))
    return f"tensorrt-cu{int(cuda.group(1))}-libs>={major},<{major + 1}"


def libpath() -> str:
    sp = _site_packages()
    dirs = sorted({p.parent for p in sp.glob("nvidia/*/lib/lib*.so*")} | {p.parent for p in sp.glob("nvidia/*/*/lib/lib*.so*")}
                  | {p.parent for p in sp.glob("tensorrt_libs/lib*.so*")})
    return ":".join(str(d) for d in dirs)


def bucket_for(texts: list[str]) -> int:
    """The smallest multiple of 32 that holds the longest of ``texts`` (boundary pads included)."""
    from kopt.bench.textset import load_textset

    items = {it.id: it for it in load_textset().items}
    unknown = [t for t in texts if t not in items]
    if unknown:
        raise SystemExit(f"gpu.py: unknown text id {unknown[0]!r}; the text set has: {', '.join(items)}")
    longest = max(len(items[t].tokens) for t in texts)
    return -(-longest // 32) * 32


def recipes(out: Path, texts: list[str], bucket: int | None, default: Path) -> list[tuple[str, Path]]:
    """One recipe file per variant (so a build that runs out of time loses one variant, not all):
    fp16 and hybrid exactly as ``default`` defines them, and the bucketed ones (bind-shapes + fold, then
    the same passes). Returns (name, path) in build order."""
    from kopt.core.recipe import validate_recipe

    data = tomllib.loads(default.read_text(encoding="utf-8"))
    by = {v["name"]: v for v in data["variants"]}
    missing = [n for n in BASE_VARIANTS if n not in by]
    if missing:
        raise SystemExit(f"gpu.py: {default} defines no variant {missing[0]!r}")
    size = bucket or bucket_for(texts)
    bind = [{"pass": "bind-shapes", "config": {"bucket": size}}, {"pass": "fold"}]
    variants = [{"name": n, "passes": by[n]["passes"]} for n in BASE_VARIANTS]
    for n in BUCKETED:
        passes = [] if n == "reference" else by[n]["passes"]
        variants.append({"name": f"{n}-b{size}", "passes": bind + passes})
    variants.sort(key=lambda v: next(i for i, p in enumerate(BUILD_ORDER) if v["name"] == p
                                     or (p.endswith("-b") and v["name"] == f"{p}{size}")))
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for v in variants:
        r = validate_recipe({"name": f"gpu-{v['name']}", "input": data.get("input", "reference"), "variants": [v]},
                            f"{default} ({v['name']})")
        p = out / f"{v['name']}.toml"
        p.write_text(r.to_toml(), encoding="utf-8")
        made.append((v["name"], p))
    return made


def set_refs(store: Path, optimize_json: Path) -> list[str]:
    """Point a ref named after each built variant at its artifact, so ``kopt bench NAME`` finds it."""
    from kopt.core.refs import set_ref
    from kopt.core.store import ArtifactStore

    done = []
    for v in _emitted(optimize_json.read_text(encoding="utf-8"))["variants"]:
        if v["status"] in ("ok", "cached") and v.get("key"):
            set_ref(ArtifactStore(store), v["name"], v["key"])
            done.append(v["name"])
    return done


def _emitted(text: str) -> dict:
    """The JSON object ``kopt --json`` printed, even when a library wrote lines to stdout before it."""
    dec = json.JSONDecoder()
    for m in re.finditer(r"(?m)^\{", text):
        try:
            obj, _ = dec.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "variants" in obj:
            return obj
    raise SystemExit("gpu.py: no `kopt --json optimize` result in the output")


COLUMNS = ("variant", "provider", "status", "load s", "1st inf s", "first-seen RTF", "RTF med", "TTFA 1st ms",
           "TTFA ms", "vs reference")


def summary(results: Path) -> tuple[list[tuple[str, ...]], list[str]]:
    """(rows, notes): one row per (variant, provider config) of the records under ``results``, with the
    RTF speed-up against the reference on the same config; notes give each skip or failure's reason."""
    from kopt.core.results import read_records

    recs = [r for r in read_records(results) if r.kind == "bench"] if results.exists() else []

    def f(v, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    ref_rtf = {r.provider.config: r.metrics.get("rtf_median") for r in recs
               if r.variant.name == "reference" and r.provider.status == "ok"}
    rows, notes = [], []
    for r in sorted(recs, key=lambda r: (str(r.provider.config), r.variant.name)):
        m, p, name = r.metrics, r.provider, r.variant.name
        base, rtf = ref_rtf.get(p.config), m.get("rtf_median")
        speed = f"{base / rtf:.2f}x" if base and rtf else "-"
        rows.append((name, p.config, p.status, f(m.get("load_s"), ".2f"),
                     f(m.get("first_infer_s"), ".3f"), f(m.get("rtf_first_seen_median"), ".4f"),
                     f(m.get("rtf_median"), ".4f"), f(m.get("ttfa_ms_first"), ".0f"), f(m.get("ttfa_ms_median"), ".0f"),
                     speed))
        if p.status != "ok":
            notes.append(f"{name} on {p.config}: {p.status}: {p.reason}")
        elif (r.extra or {}).get("ttfa_error"):
            notes.append(f"{name} on {p.config}: no TTFA: {(r.extra or {})['ttfa_error']}")
    return rows, notes


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gpu.py", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check")
    sub.add_parser("ort-spec").add_argument("cuda_major", type=int)
    sub.add_parser("trt-spec")
    sub.add_parser("libpath")
    rp = sub.add_parser("recipes")
    rp.add_argument("out", type=Path)
    rp.add_argument("--text", action="append", required=True)
    rp.add_argument("--bucket", type=int, default=None)
    rp.add_argument("--default", type=Path, default=ROOT / "recipes" / "default.toml")
    fp = sub.add_parser("ref")
    fp.add_argument("store", type=Path)
    fp.add_argument("optimize_json", type=Path)
    sp = sub.add_parser("summary")
    sp.add_argument("results", type=Path)
    a = ap.parse_args(argv)
    if a.cmd == "check":
        return check()
    if a.cmd == "ort-spec":
        print(ort_spec(a.cuda_major))
    elif a.cmd == "trt-spec":
        spec = trt_spec()
        if spec is None:
            print("gpu.py: this onnxruntime has no TensorRT provider library", file=sys.stderr)
            return 1
        print(spec)
    elif a.cmd == "libpath":
        print(libpath())
    elif a.cmd == "recipes":
        for name, path in recipes(a.out, a.text, a.bucket, a.default):
            print(name, path)
    elif a.cmd == "ref":
        print(" ".join(set_refs(a.store, a.optimize_json)))
    elif a.cmd == "summary":
        rows, notes = summary(a.results)
        if not rows:
            print(f"no bench records under {a.results}")
            return 1
        print_table(rows)
        for n in notes:
            print(f"  {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
