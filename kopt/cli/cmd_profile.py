"""`kopt profile`: where each variant's time goes, op by op (onnxruntime's profiler), and with two
variants the change op by op; records of kind ``profile`` appended to a JSONL file."""

from __future__ import annotations

from typing import List, Optional

import typer

from kopt.cli import state
from kopt.cli.options import ResultsOut, Voice, VoicePack


def profile_cmd(
    variants: List[str] = typer.Argument(..., help="Model paths, artifact keys or ref names; with two, the "
                                         "second is compared with the first op by op."),
    text: Optional[str] = typer.Option(None, "--text", help="Text id from the text set (default: the first "
                                       "medium one)."),
    threads: int = typer.Option(2, "--threads", min=1, help="Intra-op threads."),
    runs: int = typer.Option(3, "--runs", min=1, help="Profiled runs after one untimed run."),
    top: int = typer.Option(15, "--top", min=0, help="Slowest nodes to keep per variant."),
    voice: Voice = None,
    voices: VoicePack = None,
    out: ResultsOut = None,
) -> None:
    """Profile variants on the CPU EP: kernel time per op type and the slowest nodes."""
    from kopt.bench.profile import profile_variant
    from kopt.bench.textset import load_textset
    from kopt.bench.variants import default_voices, resolve_variant
    from kopt.core.kokoro import style_of
    from kopt.core.results import append_records, make_record, new_run_id
    from kopt.core.voicepack import pack_voice

    store = state.store()
    vs = [resolve_variant(store, s) for s in variants]
    ts = load_textset()
    item = ts.select(ids=[text])[0] if text else ts.select(["medium"])[0]
    voices_path, _ = default_voices(store, voices)
    name, pack = pack_voice(voices_path, voice)
    style = style_of(pack, len(item.tokens) - 2)
    run_id = new_run_id()
    records, profiles = [], []
    with state.progress().task("profiling", total=len(vs)) as t:
        for v in vs:
            p = profile_variant(v, item, style, threads=threads, runs=runs, top=top)
            profiles.append(p)
            records.append(make_record(
                "profile", run_id=run_id, variant=v.as_dict(), provider={"name": "cpu", "config": "cpu"},
                metrics={"wall_s_median": p["wall_s_median"], "rtf": p["rtf"], "kernel_ms": p["kernel_ms"]},
                threads=threads, inputs={"model_sha256": v.sha256, **ts.as_inputs(), "texts": [item.id], "voice": name},
                extra={"runs": runs, "ops": p["ops"], "top_nodes": p["top_nodes"]}))
            t.advance()
    path = append_records(state.results_path(out, run_id), records)
    if not state.S.quiet:
        _print_profiles(vs, profiles, f"{item.id}, {threads} threads")
        state.say(f"results: {path}")
    state.emit({"command": "profile", "run_id": run_id, "results": str(path), "records": records})


def _print_profiles(vs: list, profiles: list[dict], where: str) -> None:
    """Per variant its time per op type; with two variants, the change op by op."""
    from rich.table import Table

    from kopt.bench.profile import compare

    for v, p in zip(vs, profiles):
        tab = Table(title=f"{v.name}: {p['wall_s_median']:.3f} s for {p['audio_s']:.2f} s of audio "
                          f"({where}, RTF {p['rtf']:.3f})")
        for col in ("op", "ms/run", "share", "nodes"):
            tab.add_column(col, justify="left" if col == "op" else "right")
        for o in p["ops"][:20]:
            tab.add_row(o["op"], f"{o['ms']:.1f}", f"{100 * o['share']:.1f}%", str(o["nodes"]))
        state.console().print(tab)
    if len(vs) == 2:
        tab = Table(title=f"{vs[0].name} -> {vs[1].name}, op by op (ms per run)")
        for col in ("op", vs[0].name, vs[1].name, "change", "nodes"):
            tab.add_column(col, justify="left" if col == "op" else "right")
        for r in compare(*profiles)[:20]:
            tab.add_row(r["op"], f"{r['ms_a']:.1f}", f"{r['ms_b']:.1f}", f"{r['delta_ms']:+.1f}",
                        f"{r['nodes_a']} -> {r['nodes_b']}")
        state.console().print(tab)
