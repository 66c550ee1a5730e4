#!/usr/bin/env python3
"""Build a Teaclave WebAssembly function from an ONNX model; same as `teaclave-infer build`.

python build_model.py functions/mnist/mnist.onnx --out build/mnist
"""

import sys

from teaclave_infer.cli import main

if __name__ == "__main__":
    sys.exit(main(["build", *sys.argv[1:]], prog="build_model.py"))
