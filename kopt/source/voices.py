"""Voice packs in every format Kokoro users have, read into one validated mapping.

A voice is a float32 array of shape (510, 1, 256): one style row per token count. Accepted:
- ``.npz`` (e.g. ``voices-v1.0.bin``, which is an npz despite its name): name -> (510,1,256)/(510,256);
- a raw float32 ``.bin`` holding exactly one voice (510*256 floats), named after the file;
- a torch ``.pt`` voice pack (a tensor), read with torch when installed, else by a restricted
  unpickler that rebuilds float tensors and refuses anything else (no code runs);
- a folder of any of these.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np

from kokoro_runtime.errors import VoiceNotFound
from kokoro_runtime.voicepack import parse_blend as runtime_parse_blend
from kopt.core.errors import VoiceError

ROWS = 510
DIM = 256
VOICE_SHAPE = (ROWS, 1, DIM)
_SUFFIXES = (".npz", ".bin", ".pt", ".pth")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def validate_voice(name: str, arr: np.ndarray, source: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.kind != "f":
        raise VoiceError(f"{source}: voice {name!r} has dtype {a.dtype}; expected float32 of shape (510, 1, 256)")
    if a.shape == (ROWS, DIM):
        a = a.reshape(VOICE_SHAPE)
    if a.shape != VOICE_SHAPE:
        raise VoiceError(f"{source}: voice {name!r} has shape {tuple(a.shape)}; expected (510, 1, 256) or (510, 256)")
    if not np.all(np.isfinite(a)):
        raise VoiceError(f"{source}: voice {name!r} contains NaN or inf values")
    if not _NAME_RE.match(name):
        raise VoiceError(f"{source}: voice name {name!r} is not a plain name (letters, digits, _ . -)")
    return np.ascontiguousarray(a, dtype=np.float32)


def load_voices(path: str | Path) -> dict[str, np.ndarray]:
    """Read a voice file or folder into {name: (510,1,256) float32}; VoiceError on anything wrong."""
    p = Path(path)
    if not p.exists():
        raise VoiceError(f"{p}: voices not found; pass an .npz, .bin or .pt voice file or a folder of them")
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in _SUFFIXES and f.is_file())
        if not files:
            raise VoiceError(f"{p}: folder has no voice files (.npz, .bin, .pt)")
        out: dict[str, np.ndarray] = {}
        for f in files:
            for name, arr in load_voices(f).items():
                if name in out:
                    raise VoiceError(f"{f}: voice {name!r} is defined twice in {p}; rename one file")
                out[name] = arr
        return out
    if p.stat().st_size == 0:
        raise VoiceError(f"{p}: voice file is empty")
    with open(p, "rb") as f:
        magic = f.read(4)
    suffix = p.suffix.lower()
    if suffix in (".pt", ".pth"):
        return {p.stem: validate_voice(p.stem, _load_pt(p), str(p))}
    if magic.startswith(b"PK"):  # npz (voices-v1.0.bin is one)
        return _load_npz(p)
    if suffix == ".npz":
        raise VoiceError(f"{p}: not a readable npz file (truncated or corrupt)")
    if suffix == ".bin":
        return {p.stem: _load_raw_bin(p)}
    raise VoiceError(f"{p}: unknown voice format {suffix!r}; use .npz, .bin or .pt")


def _load_npz(p: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(p, allow_pickle=False) as z:
            items = {k: z[k] for k in z.files}
    except Exception as e:
        raise VoiceError(f"{p}: not a readable npz voice pack ({type(e).__name__}: {e})") from None
    if not items:
        raise VoiceError(f"{p}: voice pack holds no voices")
    return {k: validate_voice(k, v, str(p)) for k, v in sorted(items.items())}


def _load_raw_bin(p: Path) -> np.ndarray:
    n = p.stat().st_size
    want = ROWS * DIM * 4
    if n != want:
        raise VoiceError(f"{p}: raw float32 voice must be {want} bytes (510 x 256 floats), got {n}")
    return validate_voice(p.stem, np.fromfile(p, dtype="<f4").reshape(VOICE_SHAPE), str(p))


def _load_pt(p: Path) -> np.ndarray:
    try:
        import torch  # noqa: F401
    except ImportError:
        return _load_pt_without_torch(p)
    import torch

    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        raise VoiceError(f"{p}: not a readable torch voice pack ({type(e).__name__})") from None
    if not hasattr(obj, "numpy"):
        raise VoiceError(f"{p}: torch file holds {type(obj).__name__}, not a voice tensor")
    return obj.detach().float().cpu().numpy()


# -- a torch-free reader for .pt tensors ----------------------------------------------------------
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "HalfStorage": np.float16, "DoubleStorage": np.float64,
    "BFloat16Storage": None,
}


class _StorageRef:
    def __init__(self, key: str, dtype):
        self.key, self.dtype = key, dtype


def _rebuild_tensor(storage, offset, size, stride, *args):
    return ("tensor", storage, offset, tuple(size), tuple(stride))


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, f, zf: zipfile.ZipFile, prefix: str):
        super().__init__(f)
        self.zf, self.prefix = zf, prefix

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel)
        storage_type = pid[1]
        dtype = _STORAGE_DTYPES.get(storage_type if isinstance(storage_type, str) else str(storage_type))
        if dtype is None:
            raise pickle.UnpicklingError(f"unsupported storage {storage_type}")
        data = self.zf.read(f"{self.prefix}/data/{pid[2]}")
        return np.frombuffer(data, dtype=dtype)


def _load_pt_without_torch(p: Path) -> np.ndarray:
    try:
        zf = zipfile.ZipFile(p)
    except zipfile.BadZipFile:
        raise VoiceError(f"{p}: not a readable torch voice pack (not a zip archive); install torch for legacy formats") from None
    with zf:
        pkl = next((n for n in zf.namelist() if n.endswith("/data.pkl")), None)
        if pkl is None:
            raise VoiceError(f"{p}: not a torch voice pack (no data.pkl inside)")
        prefix = pkl[: -len("/data.pkl")]
        try:
            obj = _SafeUnpickler(io.BytesIO(zf.read(pkl)), zf, prefix).load()
        except Exception as e:
            raise VoiceError(f"{p}: cannot read torch voice pack without torch ({e}); install torch") from None
    if not (isinstance(obj, tuple) and obj and obj[0] == "tensor"):
        raise VoiceError(f"{p}: torch file does not hold a single voice tensor")
    _, storage, offset, size, stride = obj
    arr = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=tuple(s * storage.itemsize for s in stride))
    return np.array(arr, dtype=np.float32)


def save_voices(voices: dict[str, np.ndarray], path: str | Path) -> Path:
    """Write a validated npz voice pack (uncompressed, loads with np.load and kokoro-onnx)."""
    p = Path(path)
    clean = {k: validate_voice(k, v, str(p)) for k, v in voices.items()}
    if not clean:
        raise VoiceError(f"{p}: no voices to write")
    with open(p, "wb") as f:
        np.savez(f, **clean)
    return p


def parse_blend(spec: str) -> list[tuple[str, float]]:
    """A blend as [(voice name, weight)], weights normalised to sum 1, parsed by the runtime's own
    rule (kokoro_runtime.voicepack.parse_blend), so kopt accepts exactly what a bundle's runtime does:
    ``"a:0.7,b:0.3"`` or ``"a(2)+b(1)"`` (a weight left out is 1). VoiceError when malformed."""
    try:
        parts = runtime_parse_blend(spec)
    except VoiceNotFound as e:
        raise VoiceError(f"{e}; write 'a:0.7,b:0.3' or 'a(2)+b(1)'") from None
    if any(not name for name, _ in parts):
        raise VoiceError(f"voice blend {spec!r}: an item has no voice name; write 'a:0.7,b:0.3' or 'a(2)+b(1)'")
    total = sum(w for _, w in parts)
    return [(n, w / total) for n, w in parts]


def pack(sources: list[str | Path]) -> dict[str, np.ndarray]:
    """Read several voice files/folders into one mapping; a name defined twice is an error."""
    out: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    for src in sources:
        for name, arr in load_voices(src).items():
            if name in out:
                raise VoiceError(f"{src}: voice {name!r} is already defined by {origin[name]}; rename one")
            out[name], origin[name] = arr, str(src)
    if not out:
        raise VoiceError("no voice sources given")
    return out


def add_blend(voices: dict[str, np.ndarray], name: str, spec: str) -> dict[str, np.ndarray]:
    """A copy of ``voices`` with the blend ``spec`` added as ``name`` (which must be new)."""
    if name in voices:
        raise VoiceError(f"blend name {name!r} is already a voice; choose another name")
    arr = validate_voice(name, blend(voices, spec), f"blend {spec!r}")
    return {**voices, name: arr}


def blend(voices: dict[str, np.ndarray], spec: str) -> np.ndarray:
    parts = parse_blend(spec)
    missing = [n for n, _ in parts if n not in voices]
    if missing:
        raise VoiceError(f"blend {spec!r}: unknown voice(s) {', '.join(missing)}; known: {', '.join(sorted(voices))}")
    out = np.zeros(VOICE_SHAPE, np.float64)
    for n, w in parts:
        out += w * voices[n].astype(np.float64)
    return out.astype(np.float32)
