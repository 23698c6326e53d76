"""`kopt voices list|pack|blend`: read voice packs in any format, combine and blend them."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from kopt.cli import state
from kopt.cli.options import Blends

voices_app = typer.Typer(help="Voice packs: list, combine into one validated NPZ, blend.", no_args_is_help=True)


@voices_app.command("list")
def list_cmd(source: List[Path] = typer.Argument(..., help="Voice files (.npz, .bin, .pt) or folders.")) -> None:
    """List the voices in one or more packs, with shape and style-norm."""
    import numpy as np

    from kopt.source.voices import pack

    voices = pack(source)
    rows = []
    for name, arr in voices.items():
        norm = float(np.linalg.norm(arr.reshape(arr.shape[0], -1), axis=1).mean())
        rows.append({"name": name, "shape": list(arr.shape), "dtype": str(arr.dtype), "mean_row_norm": round(norm, 4)})
        state.say(f"{name:24s} {tuple(arr.shape)} {arr.dtype} mean row norm {norm:.3f}")
    state.emit({"command": "voices list", "voices": rows})


@voices_app.command("pack")
def pack_cmd(
    source: List[Path] = typer.Argument(..., help="Voice files (.npz, .bin, .pt) or folders."),
    output: Path = typer.Option(..., "--output", "-o", help="The combined NPZ to write."),
    blend: Blends = (),
) -> None:
    """Combine voice files into one validated NPZ (name -> (510, 1, 256) float32)."""
    from kopt.core.errors import VoiceError
    from kopt.source.voices import add_blend, pack, save_voices

    voices = pack(source)
    for item in blend:
        name, eq, spec = item.partition("=")
        if not eq:
            raise VoiceError(f"--blend {item!r}: write NAME=a:0.7,b:0.3")
        voices = add_blend(voices, name.strip(), spec)
    save_voices(voices, output)
    state.say(f"wrote {len(voices)} voices to {output}: {', '.join(voices)}")
    state.emit({"command": "voices pack", "output": str(output), "voices": list(voices)})


@voices_app.command("blend")
def blend_cmd(
    spec: str = typer.Argument(..., help="Weights, e.g. 'af_heart:0.7,af_bella:0.3' (normalized to sum 1)."),
    source: List[Path] = typer.Option(..., "--voices", help="Voice files or folders holding the named voices."),
    name: str = typer.Option(..., "--name", help="Name of the new voice."),
    output: Path = typer.Option(..., "--output", "-o", help="NPZ to write."),
    only: bool = typer.Option(False, "--only", help="Write only the blend (default: all voices plus the blend)."),
) -> None:
    """Blend voices by weight into a new named voice."""
    from kopt.source.voices import add_blend, pack, save_voices

    voices = add_blend(pack(source), name, spec)
    if only:
        voices = {name: voices[name]}
    save_voices(voices, output)
    state.say(f"wrote {output}: {name} = {spec} ({len(voices)} voices in the file)")
    state.emit({"command": "voices blend", "output": str(output), "name": name, "spec": spec, "voices": list(voices)})
