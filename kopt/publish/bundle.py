"""Write a bundle: the model, voices, vocab and token cache next to a copy of the runtime
(``kokoro_runtime/``), with manifest.json holding the sha256 and size of every file.

Atomic: everything is written into a temporary sibling folder that is renamed into place at the
end, so an error never leaves a partial bundle. Later steps extend the manifest through
``extra_manifest`` (metrics, lineage, licences) without touching the file layout.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

import kokoro_runtime
from kokoro_runtime.bundle import FORMAT, MANIFEST
from kokoro_runtime.lexicon import TokenCache
from kopt.core.errors import KoptError
from kopt.core.hashing import sha256_file
from kopt.source.voices import save_voices

RUNTIME_DIR = Path(kokoro_runtime.__file__).resolve().parent
RUNTIME_NAME = "kokoro_runtime"
# What an installed or built runtime folder holds beside its sources (`pip install ./kokoro_runtime`
# builds in place): never shipped, or a bundle would list and verify a stale build tree.
RUNTIME_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "dist", "*.egg-info")
VOICES_FILE = "voices.npz"
VOCAB_FILE = "vocab.json"
CACHE_FILE = "token_cache.json.gz"
_MODEL_SUFFIXES = (".onnx", ".ort")
_RESERVED = {"format", "version", "files", "model", "onnx_model", "voices", "vocab", "token_cache", "runtime"}


def write_bundle(out_dir: str | Path, model_path: str | Path, voices: dict[str, np.ndarray],
                 vocab: dict[str, int], token_cache_path_or_obj: "TokenCache | str | Path | None",
                 extra_manifest: dict | None = None, overwrite: bool = False,
                 extra_files: dict[str, "str | Path | bytes"] | None = None, runtime_model: str | None = None) -> Path:
    """Write the bundle at ``out_dir`` and return its path (KoptError if it exists, unless overwrite).

    ``extra_files`` maps a relative name to a file path or bytes (model card, licence notices, a
    second model format); each is listed in the manifest like every other file. ``runtime_model``:
    the bundle file the runtime loads (e.g. ``model.ort`` from ``extra_files``) when it is not the
    model itself; the manifest then names the model as ``onnx_model``."""
    out, model = Path(out_dir), Path(model_path)
    extra = dict(extra_manifest or {})
    _check(out, model, vocab, extra, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
        model_name = "model" + model.suffix
        shutil.copyfile(model, tmp / model_name)
        shutil.copytree(RUNTIME_DIR, tmp / RUNTIME_NAME, ignore=RUNTIME_IGNORE)
        save_voices(voices, tmp / VOICES_FILE)
        (tmp / VOCAB_FILE).write_text(json.dumps({"vocab": vocab}, ensure_ascii=False, indent=1), encoding="utf-8")
        _write_extra_files(tmp, extra_files or {})
        manifest: dict = {"format": FORMAT, "version": 1, "sample_rate": 24000, "model": runtime_model or model_name,
                          "voices": VOICES_FILE, "vocab": VOCAB_FILE, "runtime": RUNTIME_NAME,
                          "voice_names": sorted(voices)}
        if token_cache_path_or_obj is not None:
            cache = token_cache_path_or_obj
            if not isinstance(cache, TokenCache):
                cache = TokenCache.load(cache)
            cache.save(tmp / CACHE_FILE)
            manifest["token_cache"] = CACHE_FILE
        manifest.setdefault("default_voice", sorted(voices)[0])
        manifest.update(extra)
        if manifest["default_voice"] not in voices:
            raise KoptError(f"default voice {manifest['default_voice']!r} is not among the bundle's voices "
                            f"({', '.join(sorted(voices))})")
        if not (tmp / manifest["model"]).is_file():
            raise KoptError(f"runtime model {manifest['model']!r} is not a file of the bundle")
        manifest["files"] = {rel: {"sha256": sha256_file(tmp / rel), "size": (tmp / rel).stat().st_size}
                             for rel in _listing(tmp)}
        if manifest["model"] != model_name:
            manifest["onnx_model"] = model_name
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        _put_in_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _check(out: Path, model: Path, vocab: dict[str, int], extra: dict, overwrite: bool) -> None:
    """Refuse what would make a bad bundle, before anything is written."""
    if not model.is_file():
        raise KoptError(f"{model}: model not found")
    if model.suffix not in _MODEL_SUFFIXES:
        raise KoptError(f"{model}: a bundle model must be .onnx or .ort, got {model.suffix!r}")
    if out.exists() and not overwrite:
        raise KoptError(f"{out}: already exists; choose a new folder or pass overwrite")
    clash = sorted(_RESERVED & set(extra))
    if clash:
        raise KoptError(f"extra manifest fields {clash} are reserved by the bundle format")
    if not vocab:
        raise KoptError("bundle vocab is empty")


def _write_extra_files(tmp: Path, files: dict[str, "str | Path | bytes"]) -> None:
    for rel, src in files.items():
        dest = tmp / rel
        if dest.exists() or rel == MANIFEST:
            raise KoptError(f"bundle file {rel!r} is written by the bundle itself; choose another name")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, bytes):
            dest.write_bytes(src)
        else:
            shutil.copyfile(src, dest)


def _put_in_place(tmp: Path, out: Path) -> None:
    """Rename the finished bundle ``tmp`` to ``out``, replacing what was there."""
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def _listing(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.name != MANIFEST and "__pycache__" not in p.parts)
