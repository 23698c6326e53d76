"""pack_voice: the voice every check, benchmark and profile uses (the first by name unless asked)."""

import numpy as np
import pytest

from kopt.core.errors import KoptError
from kopt.core.voicepack import pack_voice


def _pack(tmp_path):
    path = tmp_path / "voices.npz"
    np.savez(path, zz=np.full((510, 1, 256), 2.0, np.float32), aa=np.full((510, 1, 256), 1.0, np.float32))
    return path


def test_first_by_name_unless_named(tmp_path):
    path = _pack(tmp_path)
    name, pack = pack_voice(path)
    assert name == "aa" and pack.shape == (510, 1, 256) and float(pack[0, 0, 0]) == 1.0
    name, pack = pack_voice(path, "zz")
    assert name == "zz" and float(pack[0, 0, 0]) == 2.0


def test_unknown_voice_names_the_pack(tmp_path):
    with pytest.raises(KoptError, match=r"--voice: 'nobody' is not in .*voices.npz; it has aa, zz"):
        pack_voice(_pack(tmp_path), "nobody")
