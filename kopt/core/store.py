"""Content-addressed artifact store.

``artifacts/<key>/`` holds one step's output files and ``record.json``. The key is the sha256 of
canonical JSON of the step's input hashes, name, config and the kopt/onnxruntime versions, so equal
inputs give equal keys. A step writes into a private temporary folder that is renamed into place
only after every file and the record are on disk: a folder without ``record.json`` is never
trusted, and an interrupted command leaves nothing a later run would use.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from filelock import FileLock

from kopt.core.env import versions
from kopt.core.errors import StoreError
from kopt.core.hashing import canonical_json, content_key, sha256_file

RECORD = "record.json"
RECORD_SCHEMA = 1


@dataclass(frozen=True)
class StepSpec:
    """What a step is: its name, frozen config, the hashes of what it reads, and parent artifacts."""

    step: str
    config: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # name -> sha256 of input content
    parents: tuple[str, ...] = ()
    provider: str | None = None

    def key_payload(self) -> dict[str, Any]:
        v = versions()
        payload: dict[str, Any] = {
            "step": self.step,
            "config": json.loads(canonical_json(self.config)),
            "inputs": dict(sorted(self.inputs.items())),
            "kopt": v["kopt"],
            "onnxruntime": v["onnxruntime"],
        }
        if self.provider:
            payload["provider"] = self.provider
        return payload

    @property
    def key(self) -> str:
        return content_key(self.key_payload())


@dataclass(frozen=True)
class Artifact:
    key: str
    path: Path
    record: dict[str, Any]

    def file(self, name: str) -> Path:
        if name not in self.record.get("files", {}):
            raise StoreError(f"{self.path}: artifact has no file {name!r}; re-run the step that makes it")
        return self.path / name

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        return self.record.get("files", {})

    def sha256(self, name: str) -> str:
        return self.files[name]["sha256"]


class ArtifactStore:
    def __init__(self, root: str | Path = "artifacts"):
        self.root = Path(root)

    # -- lookup -----------------------------------------------------------------------------
    def get(self, key: str, verify: bool = False) -> Artifact | None:
        """The finished artifact for ``key``, or None. Files must exist with their recorded size
        (and hash, with ``verify``); anything else is treated as absent."""
        d = self.root / key
        rec_path = d / RECORD
        if not rec_path.is_file():
            return None
        try:
            record = json.loads(rec_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        for name, meta in record.get("files", {}).items():
            p = d / name
            if not p.is_file() or p.stat().st_size != meta.get("size"):
                return None
            if verify and sha256_file(p) != meta.get("sha256"):
                return None
        return Artifact(key, d, record)

    def lock(self, key: str) -> FileLock:
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        return FileLock(str(locks / f"{key}.lock"))

    def all(self) -> list[Artifact]:
        out = []
        if self.root.is_dir():
            for d in sorted(self.root.iterdir()):
                if d.name.startswith("."):
                    continue
                a = self.get(d.name)
                if a is not None:
                    out.append(a)
        return out

    # -- writing ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, spec: StepSpec, extra: dict[str, Any] | None = None) -> Iterator[Path]:
        """Yield a private temp folder; on clean exit record its files and move it into place.

        On any exception the temp folder is removed and nothing lands in the store. The caller
        may add entries to ``extra`` (a dict) while writing; they go into the record.
        """
        key = spec.key
        tmp_root = self.root / ".tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=tmp_root))
        started = time.time()
        try:
            yield tmp
            files = {}
            for p in sorted(tmp.rglob("*")):
                if p.is_file():
                    rel = p.relative_to(tmp).as_posix()
                    files[rel] = {"sha256": sha256_file(p), "size": p.stat().st_size}
            record = {
                "schema": RECORD_SCHEMA,
                "key": key,
                **spec.key_payload(),
                "parents": list(spec.parents),
                "files": files,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "seconds": round(time.time() - started, 3),
                "versions": versions(),
                **({"extra": extra} if extra else {}),
            }
            _write_json_atomic(tmp / RECORD, record)
            _fsync_dir(tmp)
            final = self.root / key
            if final.exists():
                # Someone finished the same step first (or a stale, untrusted folder is there).
                if self.get(key) is not None:
                    shutil.rmtree(tmp, ignore_errors=True)
                    return
                shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def clean_tmp(self, older_than_s: float = 0) -> int:
        """Remove temp folders left by killed runs (only those older than ``older_than_s``, so a
        build running beside this one keeps its own); returns how many."""
        tmp_root = self.root / ".tmp"
        n = 0
        if tmp_root.is_dir():
            now = time.time()
            for d in tmp_root.iterdir():
                try:
                    if now - d.stat().st_mtime < older_than_s:
                        continue
                except OSError:
                    continue
                shutil.rmtree(d, ignore_errors=True)
                n += 1
        return n


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON so that a reader sees the old file or the whole new one, never a part."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(p, data)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
