"""`kopt bench` and `kopt providers`: speed and memory of variants on every provider, measured
interleaved in isolated workers; results appended to a JSONL file and printed as a table."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kopt.cli import state
from kopt.cli.options import Categories, DryRun, ResultsOut, Threads, Voice, VoicePack


def bench_cmd(
    variants: Optional[List[str]] = typer.Argument(None, help="Model paths, artifact keys or ref names "
                                                   "(e.g. reference base)."),
    recipe: Optional[Path] = typer.Option(None, "--recipe", help="Recipe file; its [bench] section gives the settings."),
    providers: Optional[List[str]] = typer.Option(None, "--provider", "-p", help="Provider preset (repeatable); "
                                                  "see `kopt providers`."),
    threads: Threads = None,
    repeats: Optional[int] = typer.Option(None, "--repeats", help="Timed rounds."),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Untimed rounds first."),
    ttfa_repeats: Optional[int] = typer.Option(None, "--ttfa-repeats", help="Timed TTFA runs (0 skips)."),
    categories: Categories = None,
    texts: Optional[List[str]] = typer.Option(None, "--text", help="Text ids from the text set."),
    voice: Voice = None,
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Variant ratios are against (default: the first)."),
    timeout_s: Optional[float] = typer.Option(None, "--timeout", help="Seconds a worker may take per request."),
    memory_limit_mb: Optional[int] = typer.Option(None, "--memory-mb", help="Address-space cap per worker (MB; "
                                                  "0 = none)."),
    no_partition: bool = typer.Option(False, "--no-partition", help="Skip recording node placement."),
    scaling_threads: Optional[List[int]] = typer.Option(None, "--scaling-threads", help="Thread scaling: a further "
                                                        "intra-op thread count to time RTF at on CPU cells "
                                                        "(repeatable; counts above the cores are skipped)."),
    scaling_repeats: Optional[int] = typer.Option(None, "--scaling-repeats", help="Timed rounds per scaling "
                                                  "thread count."),
    no_scaling: bool = typer.Option(False, "--no-scaling", help="Time at the main thread count only."),
    voices: VoicePack = None,
    out: ResultsOut = None,
    dry_run: DryRun = False,
) -> None:
    """Benchmark variants: size, session creation, first inference, RTF, TTFA, peak RSS per provider."""
    from kopt.bench.run import run_bench
    from kopt.bench.settings import BenchSettings
    from kopt.bench.variants import default_voices, resolve_variant
    from kopt.core.errors import KoptError
    from kopt.core.recipe import read_section, validate
    from kopt.core.results import append_records, new_run_id
    from kopt.core.vocab import default_vocab, load_vocab

    values = read_section(recipe, "bench")      # the recipe's [bench], then the flags given
    values.update(state.overrides(variants=variants, providers=providers, threads=threads, repeats=repeats,
                                  warmup=warmup, ttfa_repeats=ttfa_repeats, categories=categories, texts=texts,
                                  voice=voice, baseline=baseline, timeout_s=timeout_s, memory_limit_mb=memory_limit_mb,
                                  scaling_threads=scaling_threads, scaling_repeats=scaling_repeats))
    if no_partition:
        values["partition"] = False
    if no_scaling:
        values["scaling_threads"] = ()
    settings = validate(BenchSettings, values, str(recipe) if recipe else "kopt bench")
    if not settings.variants:
        raise KoptError("no variants: pass VARIANT arguments (paths, artifact keys or ref names) or a recipe "
                        "with [bench] variants")
    store = state.store()
    vs = [resolve_variant(store, s) for s in settings.variants]
    voices_path, vocab_path = default_voices(store, voices)
    vocab = load_vocab(vocab_path) if vocab_path else default_vocab()
    run_id = new_run_id()
    if dry_run:
        state.say(f"would benchmark {len(vs)} variant(s) x {len(settings.providers)} provider(s): "
                  f"{settings.model_dump_json()}")
        state.emit({"command": "bench", "dry_run": True, "settings": settings.model_dump(mode="json"),
                    "variants": [v.as_dict() for v in vs], "voices": str(voices_path),
                    "out": str(state.results_path(out, run_id))})
        return
    records = run_bench(vs, settings, voices_path=str(voices_path), vocab=vocab, run_id=run_id,
                        progress=state.progress())
    path = append_records(state.results_path(out, run_id), records)
    if not state.S.quiet:
        _print_bench(records, path)
    state.emit({"command": "bench", "run_id": run_id, "results": str(path), "records": records})


def _print_bench(records: list[dict], path: Path) -> None:
    """The bench and thread-scaling tables, then why each cell that did not run did not, once each."""
    state.console().print(bench_table(records))
    for t in scaling_tables(records):
        state.console().print(t)
    reasons: dict[str, str] = {}
    for r in records:
        if r["provider"]["status"] != "ok":
            key = r["provider"]["config"] if r["provider"]["status"] == "skipped" else \
                f"{r['variant']['name']} on {r['provider']['config']}"
            reasons.setdefault(key, f"{r['provider']['status']}: {r['provider']['reason']}")
    for key, why in reasons.items():
        state.say(f"  {key}: {why}")
    state.say(f"results: {path}")


def bench_table(records: list[dict]):
    """The bench records as a rich table: variant, provider, status, then the catalogue's bench view."""
    from rich.table import Table

    from kopt.select.metrics import columns

    cols = columns("bench")
    t = Table(title="kopt bench", show_lines=False)
    for name in ("variant", "provider", "status"):
        t.add_column(name, justify="left")
    for c in cols:
        t.add_column(c.heading, justify="right")
    for r in records:
        p = r["provider"]
        status = p["status"] if p["status"] == "ok" else f"{p['status']} (see below)"
        t.add_row(r["variant"]["name"], p["config"], status, *(c.cell(r["metrics"]) for c in cols))
    return t


def scaling_tables(records: list[dict]) -> list:
    """One rich table per provider config whose records carry thread-scaling figures (the report's table)."""
    from rich.table import Table

    from kopt.report.tables import scaling_frame

    by: dict[str, list[tuple[str, str, dict]]] = {}
    for r in records:
        if r["provider"]["status"] == "ok":
            by.setdefault(r["provider"]["config"], []).append((r["variant"]["name"], str(r["variant"].get("key")),
                                                               r["metrics"]))
    out = []
    for prov, rows in by.items():
        df = scaling_frame(rows)
        if df is None:
            continue
        t = Table(title=f"thread scaling ({prov}): RTF median per intra-op thread count", show_lines=False)
        for col in df.columns:
            t.add_column(str(col), justify="left" if col in ("variant", "key") else "right")
        for row in df.itertuples(index=False):
            t.add_row(*(str(v) for v in row))
        out.append(t)
    return out


def providers_cmd() -> None:
    """List provider presets, their options, and whether this onnxruntime build offers each."""
    from rich.table import Table

    from kopt.core.providers import PRESETS, availability, available_providers

    avail = available_providers()
    rows = []
    for name, cfg in PRESETS.items():
        ok, why = availability(cfg, avail)
        rows.append({"name": name, "ep": cfg.ep, "options": dict(cfg.options), "available": ok, "reason": why,
                     "summary": cfg.summary})
    if not state.S.quiet:
        t = Table("preset", "execution provider", "options", "available", "summary")
        for r in rows:
            t.add_row(r["name"], r["ep"], ", ".join(f"{k}={v}" for k, v in r["options"].items()),
                      "yes" if r["available"] else "no", r["summary"])
        state.console().print(t)
        state.say(f"this onnxruntime build offers: {', '.join(avail)}")
    state.emit({"command": "providers", "available": avail, "presets": rows})
