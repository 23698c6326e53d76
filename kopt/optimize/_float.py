"""The precondition of the rewrites that change float rounding (adain, snake, stft-conv): none of
what the pass would rewrite may feed a quantizer.

A quantizer rounds a float activation to integers, so a rewrite upstream of one that moves values
by a float ulp flips quantization steps, and the audio moves far beyond the pass's tolerance while
the equivalence check cannot tell rounding from a bug. Such a pass runs on the float model; quantize
after it. Q/DQ nodes themselves are never what these passes rewrite.
"""

from __future__ import annotations

from typing import ClassVar

import onnx_ir as ir

from kopt.core.errors import ModelError
from kopt.core.graph import feeds_a_quantizer
from kopt.core.passes import Pass, PassContext


class BeforeQuantization(Pass):
    """An ``on_ir`` pass whose ``requires`` refuses a model where any value it would rewrite (its
    ``rewrites``) feeds a quantizer (onnx-ir's use-def chains, ``graph.feeds_a_quantizer``)."""

    on_ir = True
    checked = True
    rewritten: ClassVar[str]  # what the pass rewrites, plural ("AdaINs")
    after: ClassVar[str] = ""  # where the pass belongs in a float chain (" (after adain)")
    why: ClassVar[str] = "the rewrite's float rounding flips quantization steps"

    def rewrites(self, model: ir.Model) -> list[ir.Value]:
        """The values the rewrite would replace (its matches' outputs), without rewriting anything."""
        raise NotImplementedError

    def requires(self, model: ir.Model, ctx: PassContext) -> None:
        fed = sum(feeds_a_quantizer(v) for v in self.rewrites(model))
        if fed:
            raise ModelError(
                f"{ctx.input_path or '<model>'}: {fed} of the {self.rewritten} this pass would rewrite feed a "
                f"quantizer (QuantizeLinear/DynamicQuantizeLinear: a quantized model): {self.why}; apply "
                f"{self.name} to the float model{self.after}, then quantize")
