"""Kokoro's phoneme vocabulary (178 symbols; the same for every Kokoro v1.0 export)."""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path

from kopt.core.errors import KoptError


@functools.lru_cache(maxsize=None)
def default_vocab() -> dict[str, int]:
    data = (resources.files("kopt") / "data" / "vocab.json").read_text(encoding="utf-8")
    return dict(json.loads(data)["vocab"])


def load_vocab(path: str | Path) -> dict[str, int]:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KoptError(f"{p}: not a readable vocab JSON ({type(e).__name__}); pass Kokoro's vocab.json") from None
    vocab = data.get("vocab", data) if isinstance(data, dict) else None
    if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
        raise KoptError(f"{p}: not a Kokoro vocab: expected {{'vocab': {{symbol: id}}}}")
    return dict(vocab)
