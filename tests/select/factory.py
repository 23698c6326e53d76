"""Hand-made result records for selection/report tests (built with kopt.core.results.make_record)."""

from __future__ import annotations

from typing import Any

from kopt.core.results import make_record

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def _machine(rec: dict[str, Any], machine: str | None) -> dict[str, Any]:
    if machine is not None:
        rec["machine"] = {"id": machine, "cpu": f"cpu-{machine}", "cores": 2, "hostname": machine,
                          "system": "Linux", "arch": "x86_64", "memory_bytes": None}
    return rec


def variant(name: str, parents: tuple[str, ...] = ()) -> dict[str, Any]:
    precision = next((p for p in ("fp32", "fp16", "int8", "int4") if p in name), "fp32")
    return {"name": name, "key": f"k-{name}", "parents": list(parents), "precision": precision,
            "path": f"/x/{name}.onnx"}


def bench(name: str, *, rtf: float | None, size: float, provider: str = CPU, config: str | None = None,
          run: str = "run1",
          machine: str | None = "m1", status: str = "ok", reason: str | None = None, spread: float | None = None,
          time: str | None = None, **metrics: Any) -> dict[str, Any]:
    m = {"size_mb": size, "rtf_median": rtf, "load_s": 0.5, "ttfa_ms_median": 100.0 if rtf else None,
         "rss_peak_mb": 300.0, **metrics}
    sp = {"rtf": {"p10": rtf - spread, "p90": rtf + spread, "n": 20, "std": spread}} if spread and rtf else None
    prov = {"name": provider, "status": status, "reason": reason, **({"config": config} if config else {})}
    rec = make_record("bench", run_id=run, variant=variant(name), provider=prov,
                      metrics=m, threads=1, spread=sp)
    if time:
        rec["time"] = time
    return _machine(rec, machine)


def quality(name: str, *, pesq: float | None, run: str = "run1", machine: str | None = "m1",
            provider: str = CPU, config: str | None = None, time: str | None = None, language: str = "en-us",
            **metrics: Any) -> dict[str, Any]:
    m = {"pesq_wb_aligned": pesq, "pesq_wb_natural": None if pesq is None else pesq - 0.3, "stoi_aligned": 0.95,
         "dnsmos_ovrl": 3.2, "duration_frames_diff": 0.0, "gate_pass": 1.0, **metrics}
    rec = make_record("quality", run_id=run, variant=variant(name), provider={"name": provider, **(
        {"config": config} if config else {})}, metrics=m, language=language)
    if time:
        rec["time"] = time
    return _machine(rec, machine)


def pair(name: str, *, rtf: float, pesq: float, size: float, **kw: Any) -> list[dict[str, Any]]:
    qkw = {k: kw[k] for k in ("run", "machine", "time") if k in kw}
    return [bench(name, rtf=rtf, size=size, **kw), quality(name, pesq=pesq, **qkw)]


def standard(run: str = "run1", machine: str = "m1", time: str | None = None) -> list[dict[str, Any]]:
    """Five CPU variants and two CUDA cells with a known answer:
    fp32 (slow, best), int8 (fast, good, small) -> CPU winner, fp16 (dominated by int8), int4
    (fastest but PESQ 3.5 < 4.0), broken (failed)."""
    kw = {"run": run, "machine": machine, "time": time}
    recs = []
    recs += pair("fp32", rtf=0.40, pesq=4.50, size=320.0, **kw)
    recs += pair("int8", rtf=0.20, pesq=4.20, size=90.0, **kw)
    recs += pair("fp16", rtf=0.30, pesq=4.10, size=160.0, **kw)
    recs += pair("int4", rtf=0.10, pesq=3.50, size=60.0, **kw)
    recs.append(bench("broken", rtf=None, size=80.0, status="failed", reason="worker died (SIGKILL)", **kw))
    recs.append(bench("fp32", rtf=0.05, size=320.0, provider=CUDA, **kw))
    recs.append(bench("fp16", rtf=0.03, size=160.0, provider=CUDA, **kw))
    return recs
