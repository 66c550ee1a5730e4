"""teaclave-infer: ONNX models as confidential WebAssembly functions, run in a sandbox."""

__version__ = "0.1.0"
