"""`kopt quality`: score variants against the fp32 reference (duration-aligned and natural audio),
with gates; results appended to a JSONL file and printed as a table."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from kopt.cli import state
from kopt.cli.options import Categories, DryRun, ResultsOut, Threads, VoicePack


def quality_cmd(
    variants: Optional[List[str]] = typer.Argument(None, help="Model paths, artifact keys or ref names (e.g. base)."),
    reference: Optional[str] = typer.Option(None, "--reference", help="The fp32 reference: model path, artifact key "
                                            "or ref name."),
    recipe: Optional[Path] = typer.Option(None, "--recipe", help="Recipe file; its [quality] section gives the settings."),
    metrics: Optional[List[str]] = typer.Option(None, "--metric", "-m", help="Metric name (repeatable)."),
    categories: Categories = None,
    texts: Optional[List[str]] = typer.Option(None, "--text", help="Text ids (a language with none of them is not "
                                              "scored)."),
    languages: Optional[List[str]] = typer.Option(None, "--lang", help="Languages to score (repeatable), each on its "
                                                  "own texts and voices."),
    voices: Optional[List[str]] = typer.Option(None, "--voice", help="Voice names (repeatable; default: the first)."),
    threads: Threads = None,
    no_aligned: bool = typer.Option(False, "--no-aligned", help="Score natural audio only."),
    pack: VoicePack = None,
    out: ResultsOut = None,
    dry_run: DryRun = False,
) -> None:
    """Score variants against the reference: PESQ-wb, STOI, log-mel, MR-STFT, MCD, DNSMOS, duration drift."""
    from kopt.core.recipe import read_section
    from kopt.core.results import append_records, new_run_id

    values = read_section(recipe, "quality")
    values.update(state.overrides(variants=variants, reference=reference, metrics=metrics, categories=categories,
                                  texts=texts, voices=voices, threads=threads, languages=languages))
    if no_aligned:
        values["aligned"] = False
    settings = _settings(values, recipe)
    ref, vs, vmap = _resolve(settings, pack)
    run_id = new_run_id()
    if dry_run:
        state.say(f"would score {len(vs)} variant(s) against {ref.name}: {settings.model_dump_json()}")
        state.emit({"command": "quality", "dry_run": True, "settings": settings.model_dump(mode="json"),
                    "reference": ref.as_dict(), "variants": [v.as_dict() for v in vs]})
        return
    from kopt.quality.run import run_quality

    records = run_quality(vs, ref, settings, voices=vmap, run_id=run_id,
                          cache_dir=Path(state.S.artifacts) / ".cache" / "durations", progress=state.progress())
    path = append_records(state.results_path(out, run_id), records)
    if not state.S.quiet:
        _print_results(records, path)
    state.emit({"command": "quality", "run_id": run_id, "results": str(path), "records": records})


def _settings(values: dict[str, Any], recipe: Optional[Path]):
    """The validated [quality] settings, with at least one variant."""
    from kopt.core.errors import KoptError
    from kopt.core.recipe import validate
    from kopt.quality.settings import QualitySettings

    settings = validate(QualitySettings, values, str(recipe) if recipe else "kopt quality")
    if not settings.variants:
        raise KoptError("no variants: pass VARIANT arguments (paths, artifact keys or ref names) or a recipe "
                        "with [quality] variants")
    return settings


def _resolve(settings, pack: Optional[Path]):
    """The reference and variants from the store, and the voice pack with every voice the settings name."""
    from kopt.bench.variants import default_voices, resolve_variant
    from kopt.core.errors import KoptError
    from kopt.source.voices import load_voices

    store = state.store()
    ref = resolve_variant(store, settings.reference)
    vs = [resolve_variant(store, s) for s in settings.variants]
    voices_path, _ = default_voices(store, pack)
    vmap = load_voices(voices_path)
    for name in settings.voices:
        if name not in vmap:
            raise KoptError(f"{voices_path}: no voice {name!r}; known: {', '.join(sorted(vmap))}")
    return ref, vs, vmap


def _print_results(records: list[dict], path: Path) -> None:
    """The table, then per record why aligned scores are missing and its first guard issues."""
    state.console().print(quality_table(records))
    for r in records:
        ex = r.get("extra", {})
        if not ex.get("aligned"):
            state.say(f"[yellow]{r['variant']['name']}: aligned scores unavailable: {ex.get('align_reason')}[/]")
        for issue in ex.get("guard_issues", [])[:5]:
            state.say(f"[red]guard: {issue}[/]")
    state.say(f"results: {path}")


def quality_table(records: list[dict]):
    """One row per record (variant and language); the figures are the metric catalogue's "quality" view."""
    from rich.table import Table

    from kopt.select.metrics import columns

    cols = columns("quality")
    t = Table(title=f"kopt quality (aligned / natural) vs {records[0]['inputs'].get('reference') if records else ''}")
    for col in ("variant", "language", *(c.heading for c in cols)):
        t.add_column(col, justify="left" if col == "variant" else "right")
    for r in records:
        t.add_row(r["variant"]["name"], r.get("language", "en-us"), *(c.cell(r["metrics"]) for c in cols))
    return t
