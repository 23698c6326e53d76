"""fold: constant folding and dead-node removal.

What it folds on Kokoro is shape arithmetic the exporter left in (Sqrt/Div/Cast/Slice on constant
shapes). onnxsim is the default backend, chosen by measurement on the real model
(docs/benchmark-log.md); onnxslim, with its fusions off, stays selectable.
"""

from __future__ import annotations

from typing import Literal

import onnx
import onnx_ir as ir
from onnx_ir.passes.common import LiftConstantsToInitializersPass, RemoveUnusedNodesPass
from pydantic import Field

from kopt.core.errors import KoptError
from kopt.core.graph import to_proto
from kopt.core.passes import Pass, PassConfig, PassContext, PassResult, register


class FoldConfig(PassConfig):
    backend: Literal["onnxsim", "onnxslim"] = Field(
        "onnxsim", description="Library that folds: onnxsim (default, folds more, faster) or onnxslim.")
    optimize: bool = Field(
        False, description="Also run the backend's graph rewrites (onnxsim: MatMul+Add->Gemm etc.; onnxslim: "
                           "its fusions). Off: folding and dead-node removal only.")


def finish(model: onnx.ModelProto) -> onnx.ModelProto:
    """What onnxsim without its optimizer leaves undone, with onnx-ir's own passes: every
    tensor-valued Constant node becomes an initializer (of the same name), then what nothing reads
    goes (nodes, repeatedly, the initializers they read, and unread optional outputs)."""
    irm = ir.serde.deserialize_model(model)
    LiftConstantsToInitializersPass(lift_all_constants=False, size_limit=0)(irm)
    RemoveUnusedNodesPass()(irm)
    return to_proto(irm)


@register
class Fold(Pass):
    name = "fold"
    version = 1
    config_cls = FoldConfig
    summary = "Constant folding and dead-node removal (onnxsim or onnxslim)."
    equivalent = True
    tolerance = 1e-4  # folding computes the same float ops ahead of time

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        cfg: FoldConfig = self.config  # type: ignore[assignment]
        if cfg.backend == "onnxsim":
            try:
                import onnxsim
            except ImportError:
                raise KoptError("fold backend 'onnxsim' is not installed: `pip install onnxsim` "
                                "(or set backend = \"onnxslim\")") from None
            out, ok = onnxsim.simplify(model, perform_optimization=cfg.optimize)
            if not ok:
                raise KoptError("onnxsim could not validate its folded model")
            # onnxsim without its optimizer leaves folded values as Constant nodes and keeps
            # nodes nothing reads: finish the job.
            out = finish(out)
        else:
            import onnxslim

            skip = None if cfg.optimize else ["graph_fusion"]
            out = onnxslim.slim(model, skip_optimizations=skip)
            if out is None:
                raise KoptError("onnxslim returned no model")
        return PassResult(model=out, report={"backend": cfg.backend})
