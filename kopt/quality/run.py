"""A quality run: every variant scored against one reference, one result record per variant and
language (each language on its own texts and voices: kopt.quality.texts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kopt.bench.variants import Variant
from kopt.core.progress import NullProgress
from kopt.core.providers import get as get_provider
from kopt.core.results import make_record
from kopt.quality.score import ReferenceScorer, check_gates
from kopt.quality.settings import QualitySettings
from kopt.quality.synth import Case
from kopt.quality.texts import LanguageTexts, selection, voices_for


def plan(settings: QualitySettings, voices: dict[str, np.ndarray]) -> list[tuple[LanguageTexts, list[str], list[Case]]]:
    """Per language to score: its texts, its voices and the cases (every text by every voice)."""
    out = []
    for lt in selection(settings.languages, settings.categories, settings.texts, settings.text_set):
        names = voices_for(lt.language, voices, settings.voices)
        cases = [Case(f"{it.id}/{v}", it.tokens, v, settings.speed, lt.language) for it in lt.items for v in names]
        out.append((lt, names, cases))
    return out


def run_quality(variants: Sequence[Variant], reference: Variant, settings: QualitySettings, *,
                voices: dict[str, np.ndarray], run_id: str, cache_dir: str | Path | None = None,
                progress=None) -> list[dict[str, Any]]:
    """One record per (variant, language), in variant order, languages in ``settings.languages`` order."""
    progress = progress or NullProgress()
    todo = plan(settings, voices)
    cases = [c for _, _, cs in todo for c in cs]
    langs = ", ".join(lt.language for lt, _, _ in todo)
    with progress.task(f"reference audio ({reference.name}, {len(cases)} cases: {langs})"):
        scorer = ReferenceScorer(reference.path, cases, voices, metrics=settings.metrics, aligned=settings.aligned,
                                 threads=settings.threads, cache_dir=cache_dir,
                                 determinism_runs=settings.determinism_runs)
    cpu = get_provider("cpu")
    records = []
    with progress.task("scoring", total=len(variants)) as t:
        for v in variants:
            res = scorer.score(v.path)
            verdicts = []
            for lt, names, lcases in todo:
                part = res["by_language"].get(lt.language) or {"metrics": {}, "cases": [], "guard_issues": [],
                                                                "errors": {}}
                one = {**res, **part}
                gates = check_gates(one, settings.gates)
                verdicts.append(f"{lt.language} {'pass' if gates['pass'] else 'FAIL'}")
                m = dict(part["metrics"])
                m["gate_pass"] = 1.0 if gates["pass"] else 0.0
                det = res["determinism"]
                if det is not None:
                    m["bit_identical"] = 1.0 if det["bit_identical"] else 0.0
                m["guard_issues"] = float(len(part["guard_issues"]))
                inputs = {"model_sha256": v.sha256, "reference_sha256": reference.sha256,
                          "reference_key": reference.key, "reference": reference.name, **lt.inputs,
                          "texts": sorted({c.id.split("/")[0] for c in lcases}), "voices": names,
                          "speed": settings.speed}
                extra = {"aligned": res["aligned"], "align_reason": res["align_reason"], "gates": gates,
                         "guard_issues": part["guard_issues"], "errors": part["errors"], "determinism": det,
                         "cases": part["cases"], "metrics_used": list(settings.metrics), "texts_from": lt.source}
                records.append(make_record("quality", run_id=run_id, variant=v.as_dict(),
                                           provider={**cpu.as_dict(), "status": "ok"}, metrics=m,
                                           threads=settings.threads, inputs=inputs, extra=extra,
                                           language=lt.language))
            progress.info(f"{v.name}: gates {', '.join(verdicts)}")
            t.advance()
    return records
