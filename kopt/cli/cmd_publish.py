"""`kopt publish`: write a variant as a runtime bundle (+ .tar.gz)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kopt.cli import state


def register(app: typer.Typer) -> None:
    app.command("publish")(publish_cmd)
    app.command("bundle-bench")(bundle_bench_cmd)


def publish_cmd(
    variant: str = typer.Argument(..., help="Artifact key (or 6+ char prefix) or ref name of the model to ship."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle folder to write (replaced if it exists)."),
    provider: str = typer.Option("cpu", "--provider", help="Provider preset the bundle recommends."),
    voices: Optional[str] = typer.Option(None, "--voices", help="Comma-separated voices to ship (default: all)."),
    blend: List[str] = typer.Option([], "--blend", help="Add a blended voice: NAME=a:0.7,b:0.3 (repeatable)."),
    default_voice: Optional[str] = typer.Option(None, "--default-voice", help="Voice used when none is named."),
    cache_words: int = typer.Option(50000, "--cache-words", help="Words in the token cache (0: none)."),
    ort: bool = typer.Option(False, "--ort", help="Also ship a .ort model with optimizations baked in."),
    results: List[Path] = typer.Option([], "--results", help="Results files whose records for this variant "
                                       "are attached as measured metrics."),
    tarball: bool = typer.Option(True, "--tarball/--no-tarball", help="Also write <out>.tar.gz."),
) -> None:
    """Write a bundle: model, voice NPZ, token cache, runtime, manifest (sha256 + lineage), model card, licences."""
    from kopt.core.errors import KoptError
    from kopt.publish.publish import publish
    from kopt.publish.settings import PublishSettings

    blends = {}
    for b in blend:
        name, sep, spec = b.partition("=")
        if not sep or not name or not spec:
            raise KoptError(f"--blend {b!r}: write NAME=a:0.7,b:0.3")
        blends[name] = spec
    settings = PublishSettings(provider=provider, voices=tuple(v for v in (voices or "").split(",") if v),
                               blends=blends, default_voice=default_voice, cache_words=cache_words, ort=ort,
                               tarball=tarball)
    metrics, machine = _metrics_for(variant, results) if results else ({}, {})
    res = publish(state.store(), variant, out, settings, metrics=metrics, measured_on=machine,
                  progress=state.progress())
    n = len(res.manifest.get("files", {}))
    size = sum(f["size"] for f in res.manifest.get("files", {}).values())
    state.say(f"published [bold]{res.manifest['variant']['key']}[/] -> {res.bundle} ({n} files, {size / 1e6:.1f} MB)"
              + (f"\n  {res.tarball}" if res.tarball else ""))
    state.emit({"command": "publish", "bundle": str(res.bundle), "tarball": str(res.tarball) if res.tarball else None,
                "manifest": res.manifest})


def _metrics_for(variant: str, results: list[Path]) -> tuple[dict, dict]:
    from kopt.cli.state import store
    from kopt.core.refs import resolve
    from kopt.core.results import read_records

    key = resolve(store(), variant).key
    metrics: dict = {}
    machine: dict = {}
    for r in read_records(*results):
        if r.get("variant", {}).get("key") != key or r.get("provider", {}).get("status") != "ok":
            continue
        prefix = "" if r["kind"] == "quality" else f"{r['provider'].get('config')}."
        metrics.update({f"{prefix}{k}": v for k, v in r.get("metrics", {}).items()})
        if r["kind"] == "bench":
            machine = r.get("machine", {})
    return metrics, machine


def bundle_bench_cmd(
    bundle: Path = typer.Argument(..., help="A published bundle folder."),
    text: Optional[str] = typer.Option(None, "--text", help="Text to speak (default: the text set's TTFA paragraph)."),
    voice: Optional[str] = typer.Option(None, "--voice", help="Voice (default: the bundle's)."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Runs per figure (the median is reported)."),
    threads: int = typer.Option(0, "--threads", help="Intra-op threads (0: onnxruntime's default)."),
) -> None:
    """Measure a bundle as its users run it: cold start (new process to first audio) and warm TTFA."""
    from kopt.bench.textset import load_textset
    from kopt.publish.measure import measure_bundle

    res = measure_bundle(bundle, text or load_textset().ttfa_text, voice=voice, repeats=repeats, threads=threads)
    state.say(f"{bundle}: cold start {res['cold_start_s']:.2f} s (runs {res['cold_start_s_runs']}), warm TTFA "
              f"{res['warm_ttfa_ms']:.0f} ms (runs {res['warm_ttfa_ms_runs']}) for {res['text_words']} words, "
              f"first chunk {res['first_chunk_audio_s']:.2f} s of speech")
    state.emit({"command": "bundle-bench", "bundle": str(bundle), **res})
