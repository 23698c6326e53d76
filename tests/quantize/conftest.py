from pathlib import Path

import onnx
import pytest

from tests.graphs import tiny_kokoro_model

# Kokoro module paths for the tiny graph's nodes, so group selectors mean the same as on the real model.
KOKORO_NAMES = {
    "embedding/Gather": "/encoder/text_encoder/embedding/Gather",
    "style_proj/MatMul": "/decoder/decoder/decode.0/norm1/fc/MatMul",
    "add_style": "/decoder/decoder/decode.0/Add",
    "ln/LayerNormalization": "/decoder/decoder/decode.0/norm1/LayerNormalization",
    "lstm/Transpose": "/encoder/predictor/text_encoder/lstms.0/Transpose",
    "lstm/LSTM": "/encoder/predictor/text_encoder/lstms.0/LSTM",
    "lstm/Squeeze": "/encoder/predictor/text_encoder/lstms.0/Squeeze",
    "lstm/Transpose_1": "/encoder/predictor/text_encoder/lstms.0/Transpose_1",
    "decoder/conv/Conv": "/decoder/decoder/decode.1/conv1/Conv",
    "decoder/Tanh": "/decoder/decoder/decode.1/Tanh",
    "generator/ups/ConvTranspose": "/decoder/decoder/generator/ups.0/ConvTranspose",
    "flatten": "/decoder/decoder/generator/Reshape",
    "speed_scale": "/decoder/decoder/generator/Div",
    "out/Tanh": "/decoder/decoder/generator/conv_post/Tanh",
    "out/gain": "/decoder/decoder/generator/conv_post/Mul",
}


def kokoro_named(model: onnx.ModelProto) -> onnx.ModelProto:
    for n in model.graph.node:
        n.name = KOKORO_NAMES.get(n.name, n.name)
    return model


@pytest.fixture
def named_model() -> onnx.ModelProto:
    return kokoro_named(tiny_kokoro_model())


@pytest.fixture
def named_path(tmp_path, named_model) -> Path:
    p = tmp_path / "tiny_named.onnx"
    onnx.save(named_model, str(p))
    return p
