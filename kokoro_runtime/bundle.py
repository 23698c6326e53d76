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

Verification and its stamps. Every file the process loads must have the manifest's size and sha256.
Hashing 100-300 MB costs a cold start a tenth of a second or more, so a file found good is
stamped in the user's cache (``~/.cache/kokoro_runtime/verified/``, one JSON per bundle folder,
keyed by its resolved path) with its size, mtime_ns, ctime_ns, inode, device and the sha256 it
was checked against; the next process that finds all of those unchanged, and the manifest still
naming that sha256, does not hash the file again. Any difference (the file rewritten, replaced,
moved, copied elsewhere, the manifest changed) means a full hash. A file modified less than
``RACY_S`` seconds before it was checked is not stamped: file times tick coarsely, and a second
write within the same tick would keep its mtime.

Trust model: the stamp guards against corruption and accidental change (a truncated download, a
file edited or replaced in place, a bundle copied over another), not against a malicious local
writer. Anyone who can write the bundle or the user's cache can change a file and put its times
back (``touch -r``) or forge the stamp. Where that matters, check with ``rehash=True``
(``--rehash``), which hashes every file whatever the stamps say (and stamps them afresh);
``verify=False`` (``--no-verify``) checks nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BundleError, InvalidInput

if TYPE_CHECKING:  # imported on use: reading a manifest needs neither numpy nor onnxruntime
    from .synth import Synthesizer

log = logging.getLogger("kokoro_runtime")

DEFAULT_MODE = "default"

FORMAT = "kokoro-bundle"
MANIFEST = "manifest.json"
_CHUNK = 1 << 20
STAMP_VERSION = 1
RACY_S = 2.0          # a file changed this recently is hashed but not stamped


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _fingerprint(st: os.stat_result) -> dict[str, int]:
    """What must not change for a stamp to stand for a file's hash."""
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
            "ino": st.st_ino, "dev": st.st_dev}


class Stamps:
    """The verification stamps of one bundle folder (see the module's docstring): file name ->
    fingerprint and sha256, read from and written to the user's cache; never fatal."""

    def __init__(self, root: Path) -> None:
        from .session import cache_root

        self.root = str(root.resolve())
        key = hashlib.sha256(self.root.encode("utf-8", "surrogateescape")).hexdigest()[:24]
        self.path = cache_root() / "verified" / f"{key}.json"
        self.files: dict[str, dict] = {}
        self.changed = False
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(data, dict) and data.get("version") == STAMP_VERSION and data.get("root") == self.root \
                and isinstance(data.get("files"), dict):
            self.files = data["files"]

    def vouches(self, name: str, st: os.stat_result, sha256: str | None) -> bool:
        """True when ``name``'s stamp has this very fingerprint and was checked against ``sha256``."""
        return bool(sha256) and self.files.get(name) == {**_fingerprint(st), "sha256": sha256}

    def stamp(self, name: str, st: os.stat_result, sha256: str) -> None:
        """``name``, whose stat before hashing was ``st``, hashed to ``sha256``."""
        if time.time_ns() - st.st_mtime_ns < RACY_S * 1e9:
            self.forget(name)
            return
        self.files[name] = {**_fingerprint(st), "sha256": sha256}
        self.changed = True

    def forget(self, name: str) -> None:
        if self.files.pop(name, None) is not None:
            self.changed = True

    def save(self) -> None:
        if not self.changed:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"version": STAMP_VERSION, "root": self.root, "files": self.files}),
                           encoding="utf-8")
            os.replace(tmp, self.path)            # whole or not at all; racing writers: the last one stands
            self.changed = False
        except OSError as e:                      # a read-only cache: the next start hashes again
            log.debug("verification stamps not kept in %s (%s)", self.path, e)
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass


class Bundle:
    def __init__(self, root: str | Path, verify: bool = True, rehash: bool = False) -> None:
        """``verify``: check each file this process loads against the manifest (False: none);
        ``rehash``: hash them all even where a stamp vouches for them (see the module's docstring)."""
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
        self.hashed: list[str] = []    # files hashed by this object (the others: vouched for by a stamp)
        self._verify, self._rehash = verify, rehash
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

    def required(self, key: str) -> Path:
        """The path of a file every bundle has (model, voices, vocab)."""
        p = self.path(key)
        if p is None:
            raise BundleError(f"{self.root / 'manifest.json'}: no {key!r} entry; republish the bundle")
        return p

    def verify(self, skip: set[str] | frozenset[str] = frozenset(), rehash: bool | None = None) -> None:
        """Every file in the manifest (less ``skip``) exists with its size and sha256; the named files
        are listed. A file whose stamp still stands is not hashed again unless ``rehash`` (default:
        the Bundle's)."""
        t = time.perf_counter()
        rehash = self._rehash if rehash is None else rehash
        files: dict = self.manifest["files"]
        named = [(key, self.manifest.get(key)) for key in ("model", "voices", "vocab", "token_cache")]
        named += [(f"mode {m!r} model", f) for m, f in self.modes.items()]
        for key, name in named:
            if name and name not in files:
                raise BundleError(f"{name}: named as the bundle's {key} but has no sha256 in {MANIFEST}")
        stamps = None
        try:
            for name, meta in sorted(files.items()):
                if name in skip or name in self._verified:
                    continue
                p = self.root / name
                if Path(name).is_absolute() or ".." in Path(name).parts:
                    raise BundleError(f"{name}: manifest path leaves the bundle; refusing it")
                try:
                    st = p.stat()                  # as open() sees it: a link is its target
                except OSError:
                    st = None
                if st is None or not stat.S_ISREG(st.st_mode):
                    raise BundleError(f"{name}: listed in {MANIFEST} but missing from {self.root}")
                if "size" in meta and st.st_size != meta["size"]:
                    raise BundleError(f"{name}: size {st.st_size} does not match the manifest's {meta['size']}; "
                                      "the file was changed or truncated")
                stamps = stamps or Stamps(self.root)
                if rehash or not stamps.vouches(name, st, meta.get("sha256")):
                    self.hashed.append(name)
                    if sha256_file(p) != meta.get("sha256"):
                        stamps.forget(name)
                        raise BundleError(f"{name}: sha256 does not match {MANIFEST}; the file was changed or "
                                          "corrupted")
                    stamps.stamp(name, st, meta["sha256"])
                self._verified.add(name)
        finally:
            if stamps is not None:
                stamps.save()
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
        vpath = self.required("vocab")
        try:
            vocab = load_vocab_dict(json.loads(vpath.read_text(encoding="utf-8")), str(vpath))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BundleError(f"{vpath}: not a readable vocab JSON ({type(e).__name__})") from None
        sha = self.manifest["files"].get(model.relative_to(self.root).as_posix(), {}).get("sha256")
        kwargs.setdefault("model_sha256", sha if session_cache and self._verify else None)
        kwargs.setdefault("voice_languages", self.voice_languages)
        kwargs.setdefault("default_language", self.default_language)
        return Synthesizer(model, self.required("voices"), vocab=vocab,
                           token_cache=self.path("token_cache"), providers=providers, threads=threads,
                           graph_optimization=graph_optimization, **kwargs)


def open_bundle(root: str | Path, verify: bool = True, rehash: bool = False) -> Bundle:
    """The bundle at ``root``, its manifest read and (unless verify=False) its files checked
    (``rehash``: every one hashed, whatever the stamps say)."""
    return Bundle(root, verify=verify, rehash=rehash)


def load(root: str | Path, providers: list | None = None, threads: int = 0, verify: bool = True,
         graph_optimization: bool | None = None, mode: str | None = None, *, rehash: bool = False,
         **kwargs) -> "Synthesizer":
    """A ready Synthesizer for the bundle at ``root`` (its default mode unless ``mode`` says):
    ``open_bundle(root).synthesizer(...)`` in one call."""
    return Bundle(root, verify=verify, rehash=rehash).synthesizer(providers, threads, graph_optimization, mode,
                                                                  **kwargs)
