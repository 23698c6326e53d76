import os
from pathlib import Path

import numpy as np
import pytest

from tests.graphs import tiny_kokoro, tiny_voices

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _private_user_cache(tmp_path_factory):
    """The runtime's user cache (optimized sessions, verification stamps) in a folder of this test
    run, never the user's ~/.cache; servers and commands the tests start inherit it. Tests that
    need their own cache still set XDG_CACHE_HOME themselves."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture
def tiny_model(tmp_path) -> Path:
    return tiny_kokoro(tmp_path / "tiny.onnx")


@pytest.fixture
def tiny_voices_file(tmp_path) -> Path:
    p = tmp_path / "voices.npz"
    np.savez(p, **tiny_voices())
    return p


@pytest.fixture
def store(tmp_path):
    from kopt.core.store import ArtifactStore

    return ArtifactStore(tmp_path / "artifacts")


@pytest.fixture(scope="session")
def real_store(tmp_path_factory):
    """The real embedded model fetched and referenced once per test session (slow tests only).

    Uses $KOPT_TEST_ARTIFACTS if set (so repeated local runs reuse the store), else a temp folder."""
    from kopt.core.store import ArtifactStore
    from kopt.source.fetch import fetch
    from kopt.source.reference import reference

    root = os.environ.get("KOPT_TEST_ARTIFACTS") or tmp_path_factory.mktemp("real-artifacts")
    st = ArtifactStore(root)
    base = fetch(st).artifact
    ref = reference(st, base).artifact
    return st, base, ref
