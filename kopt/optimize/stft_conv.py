"""stft-conv: an ONNX STFT with constant framing as one strided Conv over a fixed DFT basis.

A short-frame STFT is a Conv1d: frame t, bin k is ``sum_n x[t*hop + n] * window[n] *
exp(-2*pi*i*k*n / n_fft)``. So every matched ``STFT(signal, frame_step, window, frame_length)``
becomes::

    s = Reshape(signal, [0, 1, -1])              # [batch, N] or [batch, N, 1] -> [batch, 1, N]
    y = Conv(s, W, B, strides=[hop])             # W [2*bins, 1, n_fft]: the bins' cos rows, then their -sin rows
    out = Transpose(Reshape(y, [0, 2, bins, -1]), perm=[0, 3, 2, 1])   # [batch, frames, bins, 2]

Conv without padding gives STFT's frame count exactly, floor((N - n_fft) / hop) + 1; a Pad before
the STFT stays. Real parts come first, then imaginary parts, so each plane is one contiguous block
(onnxruntime turns Kokoro's Transpose/Gather of the planes into one Split of the Conv output). Why:
onnxruntime's CPU STFT kernel runs a Bluestein FFT per frame (n_fft 20 is no power of two), where
MLAS runs the Conv as one small GEMM. The basis is computed in float64 from exactly reduced angles
(k*n mod n_fft): more accurate than the kernel, with exact zeros for the DC and Nyquist bins'
imaginary parts (their sign: ZERO_SIGNS). What matches: ``match_stft``; the rest is counted.

Shapes downstream become known. On a QDQ graph that lets onnxruntime's NhwcTransformer run the int8
convs channels-last; whether that pays depends on where the per-channel QuantizeLinears end up (along
the last axis they are far slower than along axis 1): it does from onnxruntime 1.32, not with 1.31
(docs/benchmark-log.md). The hybrid recipe applies the pass to the float model, before quantizing.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx_ir as ir
from onnx import TensorProto
from onnx_ir.passes.common import RemoveUnusedNodesPass

from kopt.core.graph import (
    Builder,
    const_int,
    const_value,
    feeds_a_quantizer,
    infer_shapes,
    is_onnx_op,
    match_each,
)
from kopt.core.passes import PassConfig, PassContext, PassResult, register
from kopt.optimize._float import BeforeQuantization

# Sign given to the DC and Nyquist bins' imaginary parts, exact zeros (their weight rows are zeros),
# as a Conv bias of +-FLT_MIN on those rows only; it also keeps 0/0 out of a downstream Div.
# Kokoro's generator takes the phase with the exporter's atan2 (Div, Atan, Where): where the real
# part is negative, the phase is +pi if the imaginary part is > 0, else -pi. onnxruntime's kernel
# leaves rounding noise in those imaginary parts, so the reference's phase there is the sign of that
# noise: these are the signs it has most often on Kokoro's fp32 reference (docs/benchmark-log.md).
# The rest is noise no sign can match.
ZERO_SIGNS = {"dc": 1.0, "nyquist": -1.0}


def dft_basis(window: np.ndarray, onesided: bool) -> tuple[np.ndarray, np.ndarray]:
    """Conv weights [2*bins, 1, n_fft] and bias [2*bins], float32.

    Weight rows: window*cos(2*pi*k*n/N) for each bin k, then -window*sin(2*pi*k*n/N). Bias: 0, but
    +-FLT_MIN (ZERO_SIGNS) on the imaginary rows whose sines all vanish (k = 0, k = N/2)."""
    w = np.asarray(window, np.float64).reshape(-1)
    n_fft = w.size
    bins = n_fft // 2 + 1 if onesided else n_fft
    m = np.outer(np.arange(bins), np.arange(n_fft)) % n_fft
    ang = 2 * np.pi * m / n_fft
    cos, sin = np.cos(ang), np.sin(ang)
    # exact zeros (sin 0, sin pi, cos pi/2, ...): any other multiple of 2*pi/N is far from 1e-12
    cos[np.abs(cos) < 1e-12], sin[np.abs(sin) < 1e-12] = 0.0, 0.0
    basis = np.concatenate([cos * w, -sin * w], axis=0).astype(np.float32).reshape(2 * bins, 1, n_fft)
    bias = np.zeros(2 * bins, np.float32)
    for k in range(bins):
        if not sin[k].any():
            bias[bins + k] = ZERO_SIGNS["dc" if k == 0 else "nyquist"] * np.finfo(np.float32).tiny
    return basis, bias


class _Plan:
    def __init__(self, node: ir.Node, hop: int, window: np.ndarray, onesided: bool):
        self.node, self.hop, self.window, self.onesided = node, hop, window, onesided


def match_stft(shapes: dict, n: ir.Node) -> _Plan | str:
    """The rewrite plan for STFT node ``n``, or the reason it is left alone.

    Matched: a default-domain ``STFT`` with a constant positive integer frame_step, a float32
    constant window (or frame_length: a rectangular one) and a real float32 signal, ``[batch, N]``
    or ``[batch, N, 1]``; onesided=0 keeps all n_fft bins. Complex signals are left alone."""
    signal, step, win, length_v = (list(n.inputs) + [None] * 4)[:4]
    hop = const_int(step) if step is not None else None
    if hop is None:
        return "frame_step is not a constant integer"
    if hop < 1:
        return "frame_step is not positive"
    window = const_value(win) if win is not None else None
    if win is not None and window is None:
        return "window is not a constant"
    length = const_int(length_v) if length_v is not None else None
    if length_v is not None and length is None:
        return "frame_length is not a constant integer"
    if window is None and length is None:
        return "neither window nor frame_length given"
    if window is not None:
        if window.ndim != 1 or window.size < 1:
            return "window is not a non-empty 1-D tensor"
        if window.dtype != np.float32:
            return "window is not float32"
        if length is not None and window.size != length:
            return "window length differs from frame_length"
    elif length < 1:
        return "frame_length is not positive"
    else:
        window = np.ones(length, np.float32)
    elem, shape = shapes.get(signal.name, (None, None)) if signal is not None else (None, None)
    if shape is None:
        return "signal shape unknown"
    if elem != TensorProto.FLOAT:
        return "signal is not float32"
    if len(shape) == 3 and shape[2] == 2:
        return "complex signal ([batch, N, 2])"
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] == 1)):
        return "signal is not real [batch, N] or [batch, N, 1] (rank or last dim unknown)"
    onesided = n.attributes.get_int("onesided", 1)
    return _Plan(n, hop, window, bool(onesided))


def find_stfts(model: ir.Model) -> tuple[list[_Plan], Counter[str]]:
    """Every matched STFT of ``model`` (nothing is rewritten), and those left alone by reason."""
    if not any(is_onnx_op(n, "STFT") for n in model.graph):
        return [], Counter()
    shapes = infer_shapes(model)  # ONNX shape inference, with onnxruntime's STFT output shape as a hint
    return match_each(model.graph, "STFT", lambda n: match_stft(shapes, n))


def rewrite_stft(model: ir.Model) -> dict:
    """Rewrite every matched STFT of ``model`` in place, on onnx-ir; counts, each rewritten node's
    framing, the skip reasons, and how many rewritten STFTs feed a quantizer."""
    g = model.graph
    nodes_before = len(g)
    plans, skipped = find_stfts(model)
    rewritten, requantized = [], 0
    if plans:
        requantized = sum(feeds_a_quantizer(p.node.outputs[0]) for p in plans)
        builder = Builder(g)
        for plan in plans:
            n = plan.node
            new_nodes = _replacement(builder, plan)
            ir.convenience.replace_nodes_and_values(g, n, [n], new_nodes, [n.outputs[0]], [new_nodes[-1].outputs[0]])
            n_fft = int(plan.window.size)
            rewritten.append({"node": n.name, "n_fft": n_fft, "hop": plan.hop,
                              "bins": n_fft // 2 + 1 if plan.onesided else n_fft, "onesided": plan.onesided})
        # the replaced STFTs' frame_step, window and frame_length go when nothing else reads them
        RemoveUnusedNodesPass()(model)
    return {"stft_found": len(plans) + sum(skipped.values()), "rewritten": len(rewritten), "stft_requantized": requantized,
            "nodes": rewritten, "skipped": dict(sorted(skipped.items())),
            "nodes_before": nodes_before, "nodes_after": len(g)}


def _replacement(b: Builder, plan: _Plan) -> list[ir.Node]:
    """Reshape -> Conv -> Reshape -> Transpose, the last writing the STFT's output; registers their
    initializers in the builder's graph."""
    n = plan.node
    basis, bias = dft_basis(plan.window, plan.onesided)
    bins = basis.shape[0] // 2
    # "<module path>/Stft<Op>": letters only after the path, like the exporter's "<path>/<Op>[_k]", so
    # kopt's node groups (kopt/quantize/groups.py) put these nodes in the STFT's own group (a
    # sub-path "<path>/STFT/Conv" would land in another one).
    path = f"{n.name.rsplit('/', 1)[0]}/Stft" if n.name and "/" in n.name else "Stft"
    w, bi = b.const(f"{path}/basis", basis), b.const(f"{path}/bias", bias)
    in_shape = b.const(f"{path}/signal_shape", np.array([0, 1, -1], np.int64))
    out_shape = b.const(f"{path}/planes_shape", np.array([0, 2, bins, -1], np.int64))

    def node(op: str, what: str, inputs: list[ir.Value], **attrs) -> ir.Node:
        return b.make(op, inputs, f"{path}{what}", f"{path}{what}_output_0", **attrs)

    sig = node("Reshape", "Signal", [n.inputs[0], in_shape])
    conv = node("Conv", "Conv", [sig.outputs[0], w, bi], kernel_shape=[int(basis.shape[2])], strides=[plan.hop])
    planes = node("Reshape", "Planes", [conv.outputs[0], out_shape])
    tr = node("Transpose", "Transpose", [planes.outputs[0]], perm=[0, 3, 2, 1])
    return [sig, conv, planes, tr]


@register
class StftConv(BeforeQuantization):
    name = "stft-conv"
    version = 1
    config_cls = PassConfig
    summary = ("Real-signal STFT with constant frame_step and window as a strided Conv over a fixed DFT "
               "basis (onnxruntime's CPU STFT kernel is slow); float graphs, before quantization.")
    equivalent = True
    # The STFT values move by float rounding only. The audio moves more: Kokoro's phase of near-zero
    # bins (DC/Nyquist with a negative real part, the signal's constant ends) is the sign of rounding
    # noise, flipping +-pi, so the tolerance is what the reference's own audio moves for a 1-ulp change
    # of its STFT input or another ORT optimization level (docs/benchmark-log.md).
    tolerance = 0.1

    rewritten = "STFTs"
    why = ("the rewrite runs there (Kokoro int8 QDQ: max abs audio diff 0.27), but such a model's audio moves "
           "that much for a 1-ulp change of the STFT's input (0.19) and the pass tolerance "
           f"({tolerance:g}) cannot tell")

    def rewrites(self, model: ir.Model) -> list[ir.Value]:
        return [p.node.outputs[0] for p in find_stfts(model)[0]]

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        return PassResult(model=model, report=rewrite_stft(model))
