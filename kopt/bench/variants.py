"""Variants named on the command line: a model path, an artifact key (or 6+ char prefix) or a ref
name ("reference", "base"), resolved to a file plus what records need (key, parents, precision)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kopt.core.errors import KoptError
from kopt.core.hashing import sha256_file
from kopt.core.model import model_size
from kopt.core.store import ArtifactStore

MODEL_FILE = "model.onnx"


@dataclass(frozen=True)
class Variant:
    name: str
    key: str
    path: Path
    sha256: str
    parents: tuple[str, ...] = ()
    precision: str | None = None

    @property
    def size_mb(self) -> float:
        return model_size(self.path) / 1e6

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key, "parents": list(self.parents), "precision": self.precision,
                "path": str(self.path)}


def resolve_variant(store: ArtifactStore, spec: str) -> Variant:
    from kopt.core.refs import resolve

    p = Path(spec)
    if p.suffix in (".onnx", ".ort") or p.is_file():
        if not p.is_file():
            raise KoptError(f"{p}: model file not found; pass a model path, an artifact key or a ref name")
        sha = sha256_file(p)
        return Variant(p.stem, sha[:20], p.resolve(), sha, (), _precision_of_file(p))
    art = resolve(store, spec)
    files = art.files
    name = next((f for f in files if f.endswith(".onnx") or f.endswith(".ort")), None)
    if name is None:
        raise KoptError(f"{art.path}: artifact {art.key} holds no model file")
    ex = art.record.get("extra", {})
    precision = ex.get("precision") or _precision_of_file(art.path / name)
    return Variant(spec, art.key, (art.path / name).resolve(), art.sha256(name), tuple(art.record.get("parents", [])),
                   precision)


def _precision_of_file(p: Path) -> str | None:
    try:
        from kopt.core.model import load_model
        from kopt.core.precision import precision_of

        return precision_of(load_model(p, load_external_data=False))
    except Exception:  # precision is informative only; an odd file still gets measured
        return None


def default_voices(store: ArtifactStore, voices: str | Path | None = None) -> tuple[Path, Path | None]:
    """(voices file, vocab file) from the options or the base artifact."""
    from kopt.core.base_artifact import BASE_VOICES
    from kopt.core.refs import resolve

    if voices:
        vp = Path(voices)
        if not vp.is_file():
            raise KoptError(f"{vp}: voices not found; pass an .npz voice pack")
        return vp, None
    base = resolve(store, "base")
    return base.file(BASE_VOICES), base.file("vocab.json")
