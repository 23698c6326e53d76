"""`kopt publish`: write a variant as a runtime bundle (+ .tar.gz)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kopt.cli import state
from kopt.cli.options import Blends, ResultsOut


def publish_cmd(
    variant: str = typer.Argument(..., help="Artifact key (or 6+ char prefix) or ref name of the model to ship."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle folder to write (replaced if it exists)."),
    provider: Optional[str] = typer.Option(None, "--provider", help="Provider preset the bundle recommends."),
    voices: Optional[str] = typer.Option(None, "--voices", help="Comma-separated voices to ship (default: all)."),
    blend: Blends = (),
    default_voice: Optional[str] = typer.Option(None, "--default-voice", help="Voice used when none is named."),
    cache_words: Optional[int] = typer.Option(None, "--cache-words", help="Words in the token cache (0: none)."),
    ort: bool = typer.Option(False, "--ort", help="Also ship a .ort model with optimizations baked in."),
    results: List[Path] = typer.Option([], "--results", help="Results files whose records for this variant "
                                       "are attached as measured metrics."),
    tarball: bool = typer.Option(True, "--tarball/--no-tarball", help="Also write <out>.tar.gz."),
) -> None:
    """Write a bundle: model, voice NPZ, token cache, runtime, manifest (sha256 + lineage), model card, licences."""
    from kopt.core.errors import KoptError
    from kopt.publish.publish import Figures, publish
    from kopt.publish.settings import PublishSettings

    blends = {}
    for b in blend:
        name, sep, spec = b.partition("=")
        if not sep or not name or not spec:
            raise KoptError(f"--blend {b!r}: write NAME=a:0.7,b:0.3")
        blends[name] = spec
    settings = PublishSettings(**state.overrides(provider=provider, cache_words=cache_words),
                               voices=tuple(v for v in (voices or "").split(",") if v), blends=blends,
                               default_voice=default_voice, ort=ort, tarball=tarball)
    metrics, machine = _metrics_for(variant, results) if results else ({}, {})
    res = publish(state.store(), variant, out, settings, figures=Figures(metrics, machine), progress=state.progress())
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
        if r.variant.key != key or r.provider.status != "ok":
            continue
        prefix = "" if r.kind == "quality" else f"{r.provider.config}."
        metrics.update({f"{prefix}{k}": v for k, v in r.metrics.items()})
        if r.kind == "bench":
            machine = r.machine.as_dict()
    return metrics, machine


def bundle_bench_cmd(
    bundle: Path = typer.Argument(..., help="A published bundle folder."),
    text: Optional[str] = typer.Option(None, "--text", help="Text to speak (default: the TTFA paragraph of the text "
                                       "set in the language measured)."),
    voice: Optional[str] = typer.Option(None, "--voice", help="Voice (default: the bundle's)."),
    lang: Optional[str] = typer.Option(None, "--lang", help="Language to measure in full (default: the voice's, "
                                       "when kopt ships a text set in it, else en-us)."),
    other_languages: bool = typer.Option(True, "--other-languages/--no-other-languages",
                                         help="Also measure warm and HTTP TTFA in every other language kopt ships a "
                                              "text set for, with the same voice."),
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, help="Runs per figure (the median is reported)."),
    threads: int = typer.Option(0, "--threads", min=0, help="Intra-op threads in all (0: onnxruntime's default; "
                                "the server splits them over its instances)."),
    clients: Optional[str] = typer.Option(None, "--clients", help="Concurrent HTTP clients to measure, "
                                          "comma-separated."),
    instances: Optional[str] = typer.Option(None, "--instances", help="Server instance counts to measure, "
                                            "comma-separated."),
    requests_per_client: Optional[int] = typer.Option(None, "--requests", min=1, help="Requests per client in each "
                                                      "load run."),
    server: bool = typer.Option(True, "--server/--no-server", help="Also measure the HTTP server, its load and "
                                "the say daemon (needs the runtime's serve extra)."),
    out: ResultsOut = None,
    deploy: bool = typer.Option(False, "--deploy", help="Also write deploy files (Dockerfile, Kubernetes manifests "
                                "sized from these figures, locustfile) into deploy/ beside the bundle."),
) -> None:
    """Measure a bundle as its users run it: one-shot cold start and where it goes, warm TTFA, the HTTP
    server's TTFA and throughput under 1-8 clients, the Wyoming server's first audio and throughput, and
    the say client with and without a daemon."""
    from kopt.bench.textset import SHIPPED, for_language
    from kopt.core.results import append_records, new_run_id
    from kopt.publish.measure import bundle_record, measure_bundle
    from kopt.publish.settings import BundleBenchSettings

    main, rest = _bench_languages(bundle, voice, lang)
    ts = for_language(main if main in SHIPPED else None)
    text = text or ts.ttfa_text
    load_texts = [t.text for t in ts.select(["short", "medium"])]
    others = {c: for_language(c).ttfa_text for c in rest} if other_languages else {}
    # a flag not given takes the [bundle_bench] default (the min=1 flags are never 0)
    settings = BundleBenchSettings().model_copy(update=state.overrides(
        repeats=repeats, clients=_counts(clients, "--clients"), instances=_counts(instances, "--instances"),
        requests_per_client=requests_per_client, server=server))
    prog = state.progress()
    with prog.task("bundle-bench"):
        res = measure_bundle(bundle, text, voice=voice, threads=threads, settings=settings, load_texts=load_texts,
                             lang=main, other_languages=others, progress=prog.info)
    run_id = new_run_id()
    path = append_records(state.results_path(out, run_id), [bundle_record(res, bundle, run_id, text)])
    for line in summary_lines(res):
        state.say(line)
    state.say(f"results: {path}")
    written = None
    if deploy:
        from kopt.publish.deploy import write_deploy

        written = write_deploy(bundle, res)
        state.say(f"deploy files: {written}")
    state.emit({"command": "bundle-bench", "bundle": str(bundle), "results": str(path),
                **({"deploy": str(written)} if written else {}), **res})


def _counts(value: str | None, flag: str) -> tuple[int, ...] | None:
    """A comma-separated ``--clients``/``--instances`` value as given (None: not given)."""
    from kopt.core.errors import KoptError

    if value is None:
        return None
    try:
        vals = tuple(int(x) for x in value.split(",") if x.strip())
    except ValueError:
        vals = ()
    if not vals or min(vals) < 1:
        raise KoptError(f"{flag} {value!r}: give whole numbers >= 1, comma-separated (e.g. 1,2,4,8)")
    return vals


def _bench_languages(bundle: Path, voice: str | None, lang: str | None) -> tuple[str, list[str]]:
    """The language measured in full (``--lang``, else the bundle's choice) and the other shipped ones."""
    from kopt.bench.textset import SHIPPED
    from kopt.publish.measure import bundle_languages

    main, rest = bundle_languages(bundle, voice)
    if lang is None:
        return main, rest
    from kokoro_runtime import lang as L
    from kokoro_runtime.errors import InvalidInput
    from kopt.core.errors import KoptError

    try:
        main = L.get(lang).code
    except InvalidInput as e:
        raise KoptError(f"--lang: {e}") from None
    return main, [c for c in SHIPPED if c != main]


def summary_lines(res: dict) -> list[str]:
    """The bundle-bench figures as plain lines (the build's summary prints them too)."""
    from kopt.publish.coldstart import breakdown_text

    parts = breakdown_text(res.get("cold_breakdown_s", {}))
    first = res.get("cold_start_first_s")
    lines = [f"one-shot: process start to first audio {res['cold_start_s']:.2f} s (runs {res['cold_start_s_runs']}"
             + (f"; the first run on this machine, which also optimizes the graph once: {first:.2f} s" if first else "")
             + f"); where it goes (s): {parts}",
             f"library: warm TTFA {res['warm_ttfa_ms']:.0f} ms for {res.get('text_chars', '?')} characters "
             f"in {res.get('language', '?')} "
             f"(first chunk {res['first_chunk_audio_s']:.1f} s of speech)"]
    if "http_ttfa_ms" in res:
        lines.append(f"server: HTTP TTFA {res['http_ttfa_ms']:.0f} ms, whole response {res['http_latency_ms']:.0f} ms "
                     f"(runs {res['http_ttfa_ms_runs']}); RSS after load {res.get('server_rss_mb')} MB")
    if "wyoming_first_audio_ms" in res:
        lines.append(f"wyoming: first audio {res['wyoming_first_audio_ms']:.0f} ms, whole response "
                     f"{res['wyoming_latency_ms']:.0f} ms, streaming synthesis first audio "
                     f"{res['wyoming_stream_first_audio_ms']:.0f} ms; RSS {res.get('wyoming_rss_mb')} MB")
        for row in res.get("wyoming_load", []):
            lines.append(f"wyoming load {row['clients']} client(s): {row['throughput_x']}x real time, first audio "
                         f"p50 {row['ttfa_ms_p50']} / p95 {row['ttfa_ms_p95']} ms, {row['ok']}/{row['requests']} ok, "
                         f"{row['busy']} busy, {row['errors']} errors")
    elif res.get("wyoming_skipped"):
        lines.append(f"wyoming: not measured ({res['wyoming_skipped']})")
    if "say_warm_ms" in res:
        cached = res.get("say_cached_ms")
        lines.append(f"say: process start to first audio {res['say_warm_ms']:.0f} ms with a warm daemon"
                     + (f" ({cached:.0f} ms for a repeated text, from its cache)" if cached is not None else "")
                     + f", {res['say_cold_ms']:.0f} ms starting one")
    for row in res.get("load", []):
        lines.append(f"load {row['clients']} client(s) x {row['instances']} instance(s) x {row['threads']} thread(s): "
                     f"{row['throughput_x']}x real time, TTFA p50 {row['ttfa_ms_p50']} / p95 {row['ttfa_ms_p95']} ms, "
                     f"{row['ok']}/{row['requests']} ok, {row['busy_503']} 503, {row['errors']} errors")
    if res.get("throughput_8_vs_best_1") is not None:
        lines.append(f"throughput at the most clients vs the best single client: {res['throughput_8_vs_best_1']:.2f}")
    for code, f in res.get("languages", {}).items():
        http = f" HTTP {f['http_ttfa_ms']:.0f} ms," if "http_ttfa_ms" in f else ""
        lines.append(f"language {code}: TTFA{http} library {f['warm_ttfa_ms']:.0f} ms, first chunk "
                     f"{f['first_chunk_audio_s']:.1f} s of speech; front end {f['frontend_ms']:.1f} ms for "
                     f"{f.get('text_chars', '?')} characters")
    return lines
