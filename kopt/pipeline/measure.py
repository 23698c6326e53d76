"""Measurements as cached steps: one bench record per (variant, provider) and one quality record
per variant, each kept in the artifact store under a content key.

A bench key covers the model's sha256, the provider preset, the bench settings, the text set, the
machine id and a hash of the measuring code (bench + runtime, kopt.core.codehash); a quality key (one
per variant and language) the model's and the reference's sha256, the quality settings, the language
and its texts' sha256, the machine id and the quality code. So a
re-run with nothing changed measures nothing, and changing one variant re-measures only its cells.
Uncached bench cells of one provider are measured in one interleaved run together with the ratio
baseline, so the ratios they carry come from side-by-side timings. Failed and skipped cells are not
cached: a re-run tries them again.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

from kopt.bench.settings import BenchSettings
from kopt.bench.variants import Variant
from kopt.core.codehash import module_code_hash
from kopt.core.progress import NullProgress
from kopt.core.results import machine_info
from kopt.core.store import ArtifactStore, StepSpec
from kopt.quality.settings import QualitySettings

RECORD_FILE = "result.json"
# The code a bench cell's figures come from: the bench (its workers start by module name) and the
# runtime they time, less what the workers never run (they time Synthesizer.run_tokens and .stream):
# editing the server, the daemon or the command line must not invalidate every bench cell.
BENCH_CODE = ("kopt.bench", "kokoro_runtime", "kopt.core")
RUNTIME_NOT_BENCHED = ("kokoro_runtime.server", "kokoro_runtime.daemon", "kokoro_runtime.__main__",
                       "kokoro_runtime.bundle")
QUALITY_CODE = ("kopt.quality", "kopt.core")


def _bench_spec(v: Variant, provider: str, s: BenchSettings, textset_sha: str, machine_id: str,
                code: str) -> StepSpec:
    cfg = s.model_dump(mode="json", exclude={"variants", "providers", "baseline"})
    return StepSpec("bench", {"provider": provider, "settings": cfg},
                    {"model": v.sha256, "text_set": textset_sha, "machine": machine_id, "code": code})


def _quality_spec(v: Variant, ref: Variant, s: QualitySettings, language: str, texts_sha: str,
                  machine_id: str, code: str) -> StepSpec:
    cfg = s.model_dump(mode="json", exclude={"variants", "reference", "languages"})
    return StepSpec("quality", {"settings": cfg, "language": language},
                    {"model": v.sha256, "reference": ref.sha256, "text_set": texts_sha, "machine": machine_id,
                     "code": code})


def _cached(store: ArtifactStore, spec: StepSpec, v: Variant, run_id: str) -> dict[str, Any] | None:
    art = store.get(spec.key)
    if art is None:
        return None
    rec = json.loads(art.file(RECORD_FILE).read_text(encoding="utf-8"))
    rec["variant"] = {**rec.get("variant", {}), **v.as_dict()}  # same model, maybe another variant name
    rec.setdefault("extra", {})["cached_from"] = {"key": spec.key, "run_id": rec.get("run_id")}
    rec["run_id"] = run_id
    return rec


def _save(store: ArtifactStore, spec: StepSpec, rec: dict[str, Any]) -> None:
    with store.lock(spec.key):
        with store.writing(spec) as tmp:
            (tmp / RECORD_FILE).write_text(json.dumps(rec, sort_keys=True, default=str), encoding="utf-8")


@dataclasses.dataclass
class Measured:
    records: list[dict[str, Any]]
    reused: int
    measured: int
    skipped: int = 0  # cells on providers this machine lacks (recorded with the reason, not measured)


def bench(store: ArtifactStore, variants: Sequence[Variant], cells: Sequence[tuple[Variant, str]],
          settings: BenchSettings, *, baseline: Variant, voices_path: str, vocab: dict[str, int], run_id: str,
          progress=None) -> Measured:
    """Records for ``cells`` ((variant, provider preset) pairs), measuring only the uncached ones."""
    from kopt.bench.run import run_bench
    from kopt.bench.textset import load_textset

    progress = progress or NullProgress()
    ts_sha = load_textset(settings.text_set).sha256
    mid = machine_info()["id"]
    code = module_code_hash(*BENCH_CODE, exclude=RUNTIME_NOT_BENCHED)
    out: list[dict[str, Any]] = []
    todo: dict[str, list[Variant]] = {}
    reused = 0
    for v, prov in cells:
        rec = _cached(store, _bench_spec(v, prov, settings, ts_sha, mid, code), v, run_id)
        if rec is not None:
            out.append(rec)
            reused += 1
        else:
            todo.setdefault(prov, []).append(v)
    measured = skipped = 0
    for prov, vs in todo.items():
        batch = list(dict.fromkeys([baseline, *vs]))  # the baseline runs side by side for the ratios
        s = settings.model_copy(update={"providers": (prov,), "baseline": baseline.name})
        recs = run_bench(batch, s, voices_path=voices_path, vocab=vocab, run_id=run_id, progress=progress)
        wanted = {v.key for v in vs}
        for v, rec in zip(batch, _by_variant(recs, batch)):
            if rec is None:
                continue
            if rec["provider"]["status"] == "ok":
                _save(store, _bench_spec(v, prov, settings, ts_sha, mid, code), rec)
            if v.key in wanted:
                out.append(rec)
                if rec["provider"]["status"] == "skipped":
                    skipped += 1
                else:
                    measured += 1
            else:  # the baseline, re-measured beside them: its fresh record replaces a cached one this
                # run reports; a baseline that belongs to another shard stays out of this shard's results
                same = [i for i, r in enumerate(out) if r["variant"]["key"] == v.key and r["provider"]["config"] == prov]
                for i in same:
                    out[i] = rec
    return Measured(out, reused, measured, skipped)


def _by_variant(recs: list[dict[str, Any]], batch: list[Variant]) -> list[dict[str, Any] | None]:
    by_key = {r["variant"]["key"]: r for r in recs}
    return [by_key.get(v.key) for v in batch]


def quality(store: ArtifactStore, variants: Sequence[Variant], reference: Variant, settings: QualitySettings, *,
            voices: dict, run_id: str, cache_dir: Path | None = None, progress=None) -> Measured:
    """Records for every (variant, language); a variant is scored again only on its uncached languages."""
    from kopt.quality.run import run_quality
    from kopt.quality.texts import selection

    mid = machine_info()["id"]
    code = module_code_hash(*QUALITY_CODE)
    langs = {lt.language: lt.sha256 for lt in
             selection(settings.languages, settings.categories, settings.texts, settings.text_set)}

    def spec(v: Variant, lang: str) -> StepSpec:
        return _quality_spec(v, reference, settings, lang, langs[lang], mid, code)

    out: list[dict[str, Any]] = []
    reused = 0
    missing: dict[tuple[str, ...], list[Variant]] = {}
    for v in variants:
        todo = []
        for lang in langs:
            rec = _cached(store, spec(v, lang), v, run_id)
            if rec is not None:
                out.append(rec)
                reused += 1
            else:
                todo.append(lang)
        if todo:
            missing.setdefault(tuple(todo), []).append(v)
    measured = 0
    for todo_langs, vs in missing.items():
        recs = run_quality(vs, reference, settings.model_copy(update={"languages": todo_langs}), voices=voices,
                           run_id=run_id, cache_dir=cache_dir, progress=progress)
        for i, rec in enumerate(recs):  # variant by variant, each in todo_langs order
            v = vs[i // len(todo_langs)]
            if not rec.get("extra", {}).get("errors"):
                _save(store, spec(v, rec["language"]), rec)
            out.append(rec)
            measured += 1
    order = {v.key: i for i, v in enumerate(variants)}
    lorder = {lang: i for i, lang in enumerate(langs)}
    out.sort(key=lambda r: (order.get(r["variant"].get("key"), len(order)), lorder.get(r.get("language"), 0)))
    return Measured(out, reused, measured)
