"""A quality run: every variant scored against one reference, one result record per variant."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kopt.bench.textset import load_textset
from kopt.bench.variants import Variant
from kopt.core.progress import NullProgress
from kopt.core.providers import get as get_provider
from kopt.core.results import make_record
from kopt.quality.score import ReferenceScorer, cases_from_textset, check_gates
from kopt.quality.settings import QualitySettings


def run_quality(variants: Sequence[Variant], reference: Variant, settings: QualitySettings, *,
                voices: dict[str, np.ndarray], run_id: str, cache_dir: str | Path | None = None,
                progress=None) -> list[dict[str, Any]]:
    progress = progress or NullProgress()
    ts = load_textset(settings.text_set)
    voice_names = list(settings.voices) or [sorted(voices)[0]]
    cases = cases_from_textset(voice_names, settings.categories, settings.texts, settings.speed, settings.text_set)
    with progress.task(f"reference audio ({reference.name}, {len(cases)} cases)"):
        scorer = ReferenceScorer(reference.path, cases, voices, metrics=settings.metrics, aligned=settings.aligned,
                                 threads=settings.threads, cache_dir=cache_dir,
                                 determinism_runs=settings.determinism_runs)
    cpu = get_provider("cpu")
    records = []
    with progress.task("scoring", total=len(variants)) as t:
        for v in variants:
            res = scorer.score(v.path)
            gates = check_gates(res, settings.gates)
            m = dict(res["metrics"])
            m["gate_pass"] = 1.0 if gates["pass"] else 0.0
            det = res["determinism"]
            if det is not None:
                m["bit_identical"] = 1.0 if det["bit_identical"] else 0.0
            m["guard_issues"] = float(len(res["guard_issues"]))
            inputs = {"model_sha256": v.sha256, "reference_sha256": reference.sha256, "reference_key": reference.key,
                      "reference": reference.name, **ts.as_inputs(), "texts": sorted({c.id.split("/")[0] for c in cases}),
                      "voices": voice_names, "speed": settings.speed}
            extra = {"aligned": res["aligned"], "align_reason": res["align_reason"], "gates": gates,
                     "guard_issues": res["guard_issues"], "errors": res["errors"], "determinism": det,
                     "cases": res["cases"], "metrics_used": list(settings.metrics)}
            records.append(make_record("quality", run_id=run_id, variant=v.as_dict(),
                                       provider={**cpu.as_dict(), "status": "ok"}, metrics=m,
                                       threads=settings.threads, inputs=inputs, extra=extra))
            progress.info(f"{v.name}: gates {'pass' if gates['pass'] else 'FAIL'}")
            t.advance()
    return records
