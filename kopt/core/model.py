"""Loading and saving ONNX models with errors that name the file and say what is wrong."""

from __future__ import annotations

from pathlib import Path

import onnx

from kokoro_runtime.errors import first_line
from kopt.core.errors import ModelError

_PROTOBUF_LIMIT = 2 * 1024**3 - 1


def load_model(path: str | Path, load_external_data: bool = True) -> onnx.ModelProto:
    p = Path(path)
    if not p.exists():
        raise ModelError(f"{p}: file not found; pass the path of a Kokoro .onnx model")
    if p.is_dir():
        raise ModelError(f"{p}: is a folder; pass the path of a Kokoro .onnx model file")
    size = p.stat().st_size
    if size == 0:
        raise ModelError(f"{p}: file is empty; re-download or rebuild it")
    with open(p, "rb") as f:
        head = f.read(64)
    if _looks_like_text(head):
        raise ModelError(f"{p}: not an ONNX model (it is a text file); pass a binary .onnx model")
    try:
        model = onnx.load(str(p), load_external_data=load_external_data)
    except Exception as e:  # protobuf DecodeError, truncated external data, ...
        raise ModelError(f"{p}: not a readable ONNX model (truncated or corrupt: {first_line(e)}); "
                         "re-download or rebuild it") from e
    if not model.graph.node:
        raise ModelError(f"{p}: not a readable ONNX model (no graph; the file is truncated or not ONNX); re-download or rebuild it")
    return model


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def save_model(model: onnx.ModelProto, path: str | Path) -> Path:
    """Save a model; large ones (over protobuf's 2 GB) keep their weights in a side file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if model.ByteSize() > _PROTOBUF_LIMIT:
        onnx.save_model(model, str(p), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=p.name + ".data")
    else:
        onnx.save_model(model, str(p))
    return p


def model_size(path: str | Path) -> int:
    p = Path(path)
    total = p.stat().st_size
    side = p.with_name(p.name + ".data")
    if side.exists():
        total += side.stat().st_size
    return total


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in model.graph.node:
        k = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
        counts[k] = counts.get(k, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def parameter_count(model: onnx.ModelProto) -> dict[str, int]:
    """Number of initializer elements by element type name."""
    import numpy as np

    out: dict[str, int] = {}
    for t in model.graph.initializer:
        name = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name
        out[name] = out.get(name, 0) + int(np.prod(t.dims)) if t.dims else out.get(name, 0) + 1
    return out
