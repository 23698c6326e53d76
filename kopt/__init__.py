"""kopt: build, measure and ship optimized Kokoro-82M ONNX variants."""

__version__ = "0.1.0"
