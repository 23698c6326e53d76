"""Which voice of a voice pack kopt's checks, benchmarks and profiles use, written once."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kopt.core.errors import KoptError


def pack_voice(path: str | Path, name: str | None = None) -> tuple[str, np.ndarray]:
    """Voice ``name`` of the .npz voice pack at ``path`` (default: the first by name, the one every
    check and benchmark uses) and its style pack; a KoptError names the voices when ``name`` is
    not one of them."""
    with np.load(path, allow_pickle=False) as z:
        names = sorted(z.files)
        name = name or names[0]
        if name not in names:
            raise KoptError(f"--voice: {name!r} is not in {path}; it has {', '.join(names[:5])}, ...")
        return name, np.asarray(z[name])
