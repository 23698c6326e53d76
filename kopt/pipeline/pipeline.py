"""One build: acquire -> reference -> variants -> bench -> quality -> select -> report -> compare ->
publish. Each stage reuses what the store already holds; the summary says what was reused.

Exit codes (``BuildResult.exit_code``, from kopt.core.exits): OK built (or a shard measured); NO_WINNER no
variant meets the constraints for the publish provider; REGRESSION the regression gate tripped.
Invalid recipes and other known errors raise KoptError (ERROR from the CLI).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from kopt.core.codehash import module_code_hash
from kopt.core.errors import KoptError
from kopt.core.exits import ExitCode
from kopt.core.hashing import canonical_json, content_key
from kopt.core.progress import NullProgress
from kopt.core.results import append_records, new_run_id, read_records
from kopt.pipeline import measure
from kopt.pipeline.recipe import BuildRecipe, BundleBenchSettings

EXIT_OK, EXIT_NO_WINNER, EXIT_REGRESSION = int(ExitCode.OK), int(ExitCode.NO_WINNER), int(ExitCode.REGRESSION)


@dataclasses.dataclass
class BuildResult:
    recipe: str
    run_id: str
    build_dir: str
    results: str
    seconds: float = 0.0
    exit_code: int = EXIT_OK
    reasons: list[str] = dataclasses.field(default_factory=list)
    base: str | None = None
    reference: str | None = None
    variants: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    reused: dict[str, int] = dataclasses.field(default_factory=dict)
    measured: dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    objectives: dict[str, str | None] = dataclasses.field(default_factory=dict)
    winners: dict[str, Any] = dataclasses.field(default_factory=dict)
    tables: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # per provider, for the summary
    report: str | None = None
    comparison: dict[str, Any] | None = None
    bundle: str | None = None
    tarball: str | None = None
    bundle_bench: dict[str, Any] | None = None
    shard: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class _Build:
    """What the stages of one build share."""

    recipe: BuildRecipe
    store: Any
    progress: Any
    res: BuildResult
    run_id: str
    build_dir: Path
    results_path: Path
    shard: str | None
    variants: list = dataclasses.field(default_factory=list)      # measured models (kopt.bench.variants)
    records: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    voices_path: Path | None = None
    selection: Any = None


def run_build(recipe: BuildRecipe, store, *, recipe_path: str | Path | None = None, shard: str | None = None,
              baseline: str | Path | None = None, publish: bool = True, progress=None) -> BuildResult:
    """acquire -> variants -> measure -> (a shard stops here) select -> regression gate -> publish and
    measure the bundle -> report. Each stage is cached by content; the summary says what was reused."""
    t0 = time.time()
    run_id = new_run_id()
    build_dir = store.root / "builds" / recipe.name
    (build_dir / "runs").mkdir(parents=True, exist_ok=True)
    suffix = f".shard{shard.replace('/', 'of')}" if shard else ""
    results_path = build_dir / "runs" / f"{run_id}{suffix}.jsonl"
    res = BuildResult(recipe.name, run_id, str(build_dir), str(results_path), shard=shard)
    b = _Build(recipe, store, progress or NullProgress(), res, run_id, build_dir, results_path, shard)
    store.clean_tmp(older_than_s=3600)
    base = _acquire(b)
    _build_variants(b)
    _measure(b, base)
    if shard:
        res.seconds = round(time.time() - t0, 2)
        res.reasons.append(f"shard {shard}: merge every shard's results with `kopt report` to select and publish")
        return res
    _select(b)
    _regression_gate(b, baseline or _recipe_relative(recipe.compare.baseline, recipe_path))
    _ship(b, publish)
    _report(b)
    res.seconds = round(time.time() - t0, 2)
    _write_json(build_dir / "summary.json", res.as_dict())
    return res


def _acquire(b: _Build):
    """1. The base model, verified, and its fp32 reference."""
    from kopt.source.fetch import fetch
    from kopt.source.reference import reference

    src, res = b.recipe.source, b.res
    with b.progress.task("fetch"):
        base = fetch(b.store, model=src.model, voices=src.voices, vocab=src.vocab, progress=b.progress)
    with b.progress.task("reference"):
        ref = reference(b.store, base.artifact, progress=b.progress)
    res.base, res.reference = base.artifact.key, ref.artifact.key
    res.reused["fetch"] = int(base.cached)
    res.reused["reference"] = int(ref.cached)
    return base


def _build_variants(b: _Build) -> None:
    """2. Every variant's pass chain; the baselines and what built become the models to measure."""
    from kopt.bench.variants import resolve_variant
    from kopt.core.runner import Runner

    res = b.res
    with b.progress.task(f"variants ({len(b.recipe.variants)})", total=len(b.recipe.variants)):
        vresults = Runner(b.store, progress=b.progress).run(b.recipe)
    res.variants = [{"name": v.name, "status": v.status, "key": v.key, "reason": v.reason,
                     "steps": [dataclasses.asdict(s) | {"report": None} for s in v.steps]} for v in vresults]
    res.reused["steps"] = sum(s.cached for v in vresults for s in v.steps)
    res.measured["steps"] = sum(not s.cached for v in vresults for s in v.steps)
    variants = [resolve_variant(b.store, name) for name in b.recipe.baselines]
    variants += [dataclasses.replace(resolve_variant(b.store, v.key), name=v.name)
                 for v in vresults if v.status != "failed" and v.key]
    # one entry per model artifact (an fp32 base is its own reference: "base" and "reference" coincide)
    seen: set[str] = set()
    b.variants = [v for v in variants if not (v.key in seen or seen.add(v.key))]


def _measure(b: _Build, base) -> None:
    """3. The measurement matrix: every model on every provider, and quality per model (a shard's
    slice of it), written as this run's results."""
    from kopt.bench.variants import resolve_variant
    from kopt.core.base_artifact import BASE_VOICES
    from kopt.core.vocab import load_vocab
    from kopt.report.names import variant_facts
    from kopt.source.voices import load_voices

    recipe, res, variants = b.recipe, b.res, b.variants
    cells = [(v, p) for v in variants for p in recipe.bench.providers] + [(v, "quality") for v in variants]
    if b.shard:
        from kopt.select.shard import shard as pick

        cells = pick(cells, b.shard, key=lambda c: (c[0].key, c[1]))
    bench_cells = [c for c in cells if c[1] != "quality"]
    quality_vs = [v for v, p in cells if p == "quality"]
    b.voices_path = base.artifact.file(BASE_VOICES)
    records = b.records
    if bench_cells:
        m = measure.bench(b.store, variants, bench_cells, recipe.bench, baseline=variants[0],
                          voices_path=str(b.voices_path), vocab=load_vocab(base.artifact.file("vocab.json")),
                          run_id=b.run_id, progress=b.progress)
        records += m.records
        res.reused["bench_cells"], res.measured["bench_cells"] = m.reused, m.measured
        res.skipped["bench_cells"] = m.skipped
    if quality_vs:
        try:
            q = measure.quality(b.store, quality_vs, resolve_variant(b.store, "reference"), recipe.quality,
                                voices=load_voices(b.voices_path), run_id=b.run_id,
                                cache_dir=b.store.root / ".cache" / "quality", progress=b.progress)
        except KoptError as e:  # the stage could not run (e.g. no duration chain to align on): say so, go on
            res.reasons.append(f"quality scoring failed: {e}")
            b.progress.warn(f"quality scoring failed: {e}")
        else:
            records += q.records
            res.reused["quality"], res.measured["quality"] = q.reused, q.measured
    facts: dict[str, dict[str, Any]] = {}
    for rec in records:  # what the pass chain made: "hybrid" and its precision map, not just "int8"
        v = rec.get("variant") or {}
        if v.get("key"):
            v.update(facts.setdefault(v["key"], variant_facts(b.store, v["key"])))
    _write_results(b.results_path, records)


def _select(b: _Build) -> None:
    """4. The Pareto frontier and a winner per provider."""
    from kopt.report.tables import summary_dicts
    from kopt.select.frontier import select
    from kopt.select.metrics import Catalog
    from kopt.select.rows import build_rows

    recipe, res = b.recipe, b.res
    cat = Catalog({k: v.model_dump() for k, v in recipe.select.metrics.items()})
    res.objectives = {"speed": recipe.select.speed, "quality": recipe.select.quality, "size": recipe.select.size}
    b.selection = select(build_rows(b.records, catalog=cat,
                                    quality_across_machines=recipe.select.quality_across_machines),
                         recipe.select, cat)
    for g in b.selection.groups:
        res.winners[g.provider] = {"winner": g.winner.variant if g.winner else None,
                                   "key": g.winner.variant_key if g.winner else None,
                                   "explanation": g.explanation,
                                   "metrics": _row_metrics(g.winner) if g.winner else {}}
    res.tables = summary_dicts(b.selection, recipe.select.speed)


def _regression_gate(b: _Build, base_path: Path | None) -> None:
    """5. Against a baseline's results, when the recipe or the command names one."""
    if not base_path:
        return
    from kopt.report.verdict import compare

    cmp_ = compare(read_records(base_path), b.records, b.recipe.compare.settings)
    b.res.comparison = cmp_.as_dict()
    if cmp_.regression:
        b.res.exit_code = EXIT_REGRESSION
        b.res.reasons.append(f"regression against {base_path}: "
                             + "; ".join(f"{c.variant}/{c.provider} {c.metric}" for c in cmp_.regressions[:5]))


def _ship(b: _Build, publish: bool) -> None:
    """6. Publish the winner for the target provider, then measure the bundle as its users run it
    (its record joins this run's results)."""
    from kopt.publish.measure import bundle_record

    recipe, res = b.recipe, b.res
    target = recipe.publish.provider
    win = res.winners.get(target)
    if not win or not win.get("key"):
        res.exit_code = res.exit_code or EXIT_NO_WINNER
        why = win["explanation"] if win else f"no results for provider {target!r}"
        res.reasons.append(f"no variant meets the constraints on {target}: {why}")
        return
    if not publish:
        return
    row = next(g.winner for g in b.selection.groups if g.provider == target)
    with b.progress.task(f"publish {win['winner']}"):
        built = {v.name: v.key for v in b.variants}
        bundle, tar = _publish(b.store, recipe, win, row, b.build_dir, b.progress, built)
    res.bundle, res.tarball = str(bundle), (str(tar) if tar else None)
    with b.progress.task("bundle: one-shot, server, load and say"):
        res.bundle_bench = _bundle_bench(b.store, bundle, recipe.bench.threads, recipe.bundle_bench, b.progress)
    rec = bundle_record(res.bundle_bench, bundle, b.run_id, res.bundle_bench["text"])
    if recipe.publish.deploy:
        from kopt.publish.deploy import write_deploy

        b.progress.info(f"deploy files: {write_deploy(bundle, res.bundle_bench)}")
    append_records(b.results_path, [rec])
    append_records(b.build_dir / "latest.jsonl", [rec])
    b.records.append(rec)


def _report(b: _Build) -> None:
    """7. The report, last: it shows the published bundle's figures too."""
    from kopt.report.listen import ListenSettings
    from kopt.report.page import write_report

    recipe = b.recipe
    with b.progress.task("report"):
        listen = ListenSettings(store=b.store, voices=b.voices_path, cache_dir=b.store.root / ".cache",
                                text_set=recipe.quality.text_set, threads=recipe.quality.threads,
                                winner_provider=recipe.publish.provider
                                if recipe.publish.provider in recipe.bench.providers else None)
        rep = write_report([(b.run_id, b.records)], b.build_dir / "report", settings=recipe.select,
                           title=f"kopt build: {recipe.name}", store=b.store, listen=listen, progress=b.progress)
    b.res.report = str(rep.html)


def _row_metrics(row) -> dict[str, Any]:
    return {k: v for k, v in dict(row.metrics).items() if isinstance(v, (int, float))}


def _publish(store, recipe: BuildRecipe, win: dict[str, Any], row, build_dir: Path, progress,
             built: dict[str, str]):
    """Publish unless the bundle already there was made from the same variant, settings and figures.
    ``built``: recipe name -> artifact key of every variant that built (for the quality modes)."""
    from kopt.core.results import machine_info
    from kopt.publish.publish import Figures, Release, publish

    modes = {}
    for mode, vname in recipe.publish.modes.items():
        if vname not in built:
            raise KoptError(f"publish.modes.{mode}: variant {vname!r} did not build or is not in the recipe "
                            f"(built: {', '.join(sorted(built))})")
        modes[mode] = (vname, built[vname])
    metrics = _row_metrics(row)
    pkey = content_key({"variant": win["key"], "modes": modes, "settings": recipe.publish.model_dump(mode="json"),
                        "metrics": json.loads(canonical_json(metrics)), "code": module_code_hash("kopt.publish", "kokoro_runtime")})
    out = build_dir / "bundle"
    manifest = out / "manifest.json"
    tar = out.with_name(out.name + ".tar.gz")
    if manifest.is_file():
        try:
            m = json.loads(manifest.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            m = {}
        if m.get("publish_key") == pkey and all((out / f).is_file() and (out / f).stat().st_size == i["size"]
                                                 for f, i in m.get("files", {}).items()) \
                and (tar.is_file() or not recipe.publish.tarball):
            progress.info(f"bundle reused: {out}")
            return out, tar if recipe.publish.tarball else None
    pub = publish(store, Release(win["key"], name=win["winner"], modes=modes, publish_key=pkey), out, recipe.publish,
                  figures=Figures(metrics, machine_info()), progress=progress)
    return pub.bundle, pub.tarball


def _bundle_bench(store, bundle: Path, threads: int, bb: BundleBenchSettings, progress=None) -> dict[str, Any]:
    """The published bundle measured as users run it (kopt.publish.measure: one-shot, library, HTTP
    server under load, say daemon) in its default voice's language, and the TTFA of every other
    language kopt ships a text set for, cached by the bundle's manifest hash, the machine and the
    measuring code."""
    from kopt.bench.textset import for_language
    from kopt.core.hashing import sha256_bytes, sha256_file
    from kopt.core.results import machine_info
    from kopt.core.store import StepSpec
    from kopt.publish.measure import bundle_languages, measure_bundle

    main, other = bundle_languages(bundle)
    ts = for_language(main)
    text = ts.ttfa_text
    load_texts = [t.text for t in ts.select(["short", "medium"])]
    others = {code: for_language(code).ttfa_text for code in other}
    spec = StepSpec("bundle-bench", {"repeats": bb.repeats, "threads": threads, "text_sha256": sha256_bytes(text.encode()),
                                     "load_texts_sha256": sha256_bytes("\n".join(load_texts).encode()),
                                     "lang": main, "other_languages": {k: sha256_bytes(v.encode()) for k, v in
                                                                       others.items()},
                                     "clients": list(bb.clients), "instances": list(bb.instances),
                                     "requests_per_client": bb.requests_per_client, "server": bb.server},
                    {"manifest": sha256_file(bundle / "manifest.json"), "machine": machine_info()["id"],
                     "code": module_code_hash("kopt.publish", "kokoro_runtime")})
    with store.lock(spec.key):
        hit = store.get(spec.key)
        if hit is None:
            result = measure_bundle(bundle, text, threads=threads, settings=bb, load_texts=load_texts, lang=main,
                                    other_languages=others, progress=progress.info if progress else None)
            with store.writing(spec) as tmp:
                (tmp / "result.json").write_text(json.dumps(result), encoding="utf-8")
            return result | {"cached": False, "text": text}
    return json.loads(hit.file("result.json").read_text(encoding="utf-8")) | {"cached": True, "text": text}


def _recipe_relative(p: str | None, recipe_path) -> Path | None:
    if not p:
        return None
    path = Path(p)
    if not path.is_absolute() and recipe_path is not None:
        cand = Path(recipe_path).parent / path
        if cand.exists():
            return cand
    if not path.exists():
        raise KoptError(f"compare.baseline: {path}: results not found; build once without a baseline first")
    return path


def _write_results(path: Path, records: list[dict[str, Any]]) -> None:
    part = path.with_name(path.name + ".part")
    part.unlink(missing_ok=True)
    append_records(part, records)
    os.replace(part, path)
    latest = path.parent.parent / "latest.jsonl"
    lpart = latest.with_name(latest.name + ".part")
    lpart.unlink(missing_ok=True)
    append_records(lpart, records)
    os.replace(lpart, latest)


def _write_json(path: Path, data: Any) -> None:
    from kopt.core.store import write_json_atomic

    write_json_atomic(path, data)
