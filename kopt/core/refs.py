"""Named pointers into the artifact store (``artifacts/refs/<name>.json``), e.g. ``base`` and
``reference``, so commands can default to what the last fetch/reference produced."""

from __future__ import annotations

import json
import re
from pathlib import Path

from kopt.core.errors import KoptError
from kopt.core.store import Artifact, ArtifactStore, write_json_atomic

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _ref_path(store: ArtifactStore, name: str) -> Path:
    return store.root / "refs" / f"{name}.json"


def set_ref(store: ArtifactStore, name: str, key: str) -> None:
    if not _NAME.match(name):
        raise KoptError(f"ref name {name!r} must be letters, digits, _ . -")
    write_json_atomic(_ref_path(store, name), {"key": key})


def find(store: ArtifactStore, name: str) -> Artifact | None:
    """The artifact a ref names, or None when there is no such ref (or its artifact is gone)."""
    if not _NAME.match(name) or not _ref_path(store, name).is_file():
        return None
    try:
        return resolve(store, name)
    except KoptError:
        return None


def resolve(store: ArtifactStore, name_or_key: str) -> Artifact:
    """An artifact by key (or unique key prefix of 6+ chars) or ref name."""
    ref = _ref_path(store, name_or_key) if _NAME.match(name_or_key) else None
    key = name_or_key
    if ref is not None and ref.is_file():
        key = json.loads(ref.read_text(encoding="utf-8"))["key"]
    art = store.get(key)
    if art is None and len(name_or_key) >= 6 and store.root.is_dir():
        matches = [d.name for d in store.root.iterdir() if d.name.startswith(name_or_key)]
        if len(matches) == 1:
            art = store.get(matches[0])
    if art is None:
        hint = "run `kopt fetch` first" if name_or_key in ("base", "reference") else "check `kopt artifacts`"
        raise KoptError(f"{Path(store.root) / name_or_key}: no such artifact or ref; {hint}")
    return art
