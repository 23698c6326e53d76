"""Reading a bundle: manifest.json names the files and their sha256; every file is checked before use.

manifest.json (written by kopt's bundle writer)::

    {"format": "kokoro-bundle", "version": 1, "sample_rate": 24000,
     "model": "model.onnx", "voices": "voices.npz", "vocab": "vocab.json",
     "token_cache": "token_cache.json.gz", "default_voice": "af_heart",
     "voice_languages": {"my_voice": "ja"},     # optional: voices whose names do not say their language
     "default_language": "en-us",               # optional: for such voices when not listed (default en-us)
     "languages": {"ja": {"g2p": "..."}},       # written by kopt: the languages measured, G2P versions
     "runtime_options": {"graph_optimization": true},
     "modes": {"fast": {"model": "model.onnx", "variant": "hybrid"},          # optional: more than
               "quality": {"model": "modes/quality.onnx", "variant": "fused"}},  # one model, by mode
     "default_mode": "fast",
     "files": {"model.onnx": {"sha256": "...", "size": 123}, ...}}

A bundle without ``modes`` has one mode, ``default``, whose model is ``model``.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BundleError, InvalidInput

if TYPE_CHECKING:  # imported on use: reading a manifest needs neither numpy nor onnxruntime
    from .synth import Synthesizer

DEFAULT_MODE = "default"

FORMAT = "kokoro-bundle"
MANIFEST = "manifest.json"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


class Bundle:
    def __init__(self, root: str | Path, verify: bool = True) -> None:
        self.root = Path(root)
        mpath = self.root / MANIFEST
        if not mpath.is_file():
            raise BundleError(f"{self.root}: not a bundle (no {MANIFEST})")
        try:
            self.manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BundleError(f"{mpath}: not readable JSON ({type(e).__name__})") from None
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != FORMAT:
            raise BundleError(f"{mpath}: not a kokoro bundle manifest (format is not {FORMAT!r})")
        for key in ("model", "voices", "vocab", "files"):
            if key not in self.manifest:
                raise BundleError(f"{mpath}: field {key!r} is missing")
        modes = self.manifest.get("modes") or {}
        if not isinstance(modes, dict) or not all(isinstance(v, dict) and isinstance(v.get("model"), str)
                                                  for v in modes.values()):
            raise BundleError(f"{mpath}: field 'modes' must map each mode to {{\"model\": FILE}}")
        if modes and self.default_mode not in modes:
            raise BundleError(f"{mpath}: default_mode {self.default_mode!r} is not among the modes "
                              f"({', '.join(modes)})")
        self.verify_s = 0.0            # seconds spent checking sha256s (a cold start's share)
        self._verify = verify
        self._verified: set[str] = set()
        if verify:
            self.verify(skip=self._loaded_later())

    def _loaded_later(self) -> set[str]:
        """Model files this process does not load now: other modes' models (checked when their mode
        is first used) and .onnx twins of .ort models (shipped for other clients, e.g. kokoro-onnx)."""
        models = set(self.modes.values())
        twins = {v.get("onnx_model") for v in (self.manifest.get("modes") or {}).values()}
        twins.add(self.manifest.get("onnx_model"))
        later = (models - {self.modes[self.default_mode]}) | {t for t in twins if t and t not in models}
        return {f for f in later if f}

    def path(self, key: str) -> Path | None:
        name = self.manifest.get(key)
        return self.root / name if name else None

    def verify(self, skip: set[str] | frozenset[str] = frozenset()) -> None:
        """Every file in the manifest (less ``skip``) exists with its size and sha256; the named files
        are listed."""
        t = time.perf_counter()
        files: dict = self.manifest["files"]
        named = [(key, self.manifest.get(key)) for key in ("model", "voices", "vocab", "token_cache")]
        named += [(f"mode {m!r} model", f) for m, f in self.modes.items()]
        for key, name in named:
            if name and name not in files:
                raise BundleError(f"{name}: named as the bundle's {key} but has no sha256 in {MANIFEST}")
        for name, meta in sorted(files.items()):
            if name in skip or name in self._verified:
                continue
            p = self.root / name
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise BundleError(f"{name}: manifest path leaves the bundle; refusing it")
            if not p.is_file():
                raise BundleError(f"{name}: listed in {MANIFEST} but missing from {self.root}")
            if "size" in meta and p.stat().st_size != meta["size"]:
                raise BundleError(f"{name}: size {p.stat().st_size} does not match the manifest's {meta['size']}; "
                                  "the file was changed or truncated")
            if sha256_file(p) != meta.get("sha256"):
                raise BundleError(f"{name}: sha256 does not match {MANIFEST}; the file was changed or corrupted")
            self._verified.add(name)
        self.verify_s = round(self.verify_s + time.perf_counter() - t, 4)

    @property
    def default_voice(self) -> str | None:
        return self.manifest.get("default_voice")

    @property
    def voice_languages(self) -> dict[str, str]:
        """Languages the manifest declares per voice (for voices outside Kokoro's naming convention)."""
        vl = self.manifest.get("voice_languages") or {}
        if not isinstance(vl, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in vl.items()):
            raise BundleError(f"{self.root / MANIFEST}: field 'voice_languages' must map voice names to language codes")
        return vl

    @property
    def default_language(self) -> str:
        return self.manifest.get("default_language") or "en-us"

    @property
    def modes(self) -> dict[str, str]:
        """Mode name -> the model file the runtime loads for it (one mode, ``default``, if none are listed)."""
        modes = self.manifest.get("modes") or {}
        return {k: v["model"] for k, v in modes.items()} if modes else {DEFAULT_MODE: self.manifest["model"]}

    @property
    def default_mode(self) -> str:
        modes = self.manifest.get("modes") or {}
        return self.manifest.get("default_mode") or next(iter(modes), DEFAULT_MODE)

    def model_path(self, mode: str | None = None) -> Path:
        mode = mode or self.default_mode
        if mode not in self.modes:
            raise InvalidInput("mode", f"{mode!r} is not a mode of this bundle; it has {', '.join(self.modes)}")
        return self.root / self.modes[mode]

    def synthesizer(self, providers: list | None = None, threads: int = 0,
                    graph_optimization: bool | None = None, mode: str | None = None, session_cache: bool = True,
                    **kwargs) -> "Synthesizer":
        """A Synthesizer for ``mode``. ``session_cache``: keep onnxruntime's optimized CPU graph in the
        user's cache (keyed by the model's sha256 from the manifest) so later processes start faster."""
        from .synth import Synthesizer, load_vocab_dict

        model = self.model_path(mode)
        if self._verify:                       # a mode first used now: its model is checked now
            self.verify(skip=set(self.manifest["files"]) - {model.relative_to(self.root).as_posix()})
        if graph_optimization is None:
            graph_optimization = bool(self.manifest.get("runtime_options", {}).get("graph_optimization", True))
        vpath = self.path("vocab")
        try:
            vocab = load_vocab_dict(json.loads(vpath.read_text(encoding="utf-8")), str(vpath))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BundleError(f"{vpath}: not a readable vocab JSON ({type(e).__name__})") from None
        sha = self.manifest["files"].get(model.relative_to(self.root).as_posix(), {}).get("sha256")
        kwargs.setdefault("model_sha256", sha if session_cache and self._verify else None)
        kwargs.setdefault("voice_languages", self.voice_languages)
        kwargs.setdefault("default_language", self.default_language)
        return Synthesizer(model, self.path("voices"), vocab=vocab,
                           token_cache=self.path("token_cache"), providers=providers, threads=threads,
                           graph_optimization=graph_optimization, **kwargs)


def open_bundle(root: str | Path, verify: bool = True) -> Bundle:
    """The bundle at ``root``, its manifest read and (unless verify=False) its files checked."""
    return Bundle(root, verify=verify)


def load(root: str | Path, providers: list | None = None, threads: int = 0, verify: bool = True,
         graph_optimization: bool | None = None, mode: str | None = None, **kwargs) -> "Synthesizer":
    """A ready Synthesizer for the bundle at ``root`` (its default mode unless ``mode`` says):
    ``open_bundle(root).synthesizer(...)`` in one call."""
    return Bundle(root, verify=verify).synthesizer(providers, threads, graph_optimization, mode, **kwargs)
