"""The MNIST demo against a running platform (see teaclave_client/mnist_demo.py):

    python client/mnist_demo.py --url http://127.0.0.1:8000 --admin-password-file admin.txt \
        --wasm build/mnist/mnist.wasm [--images DIR]

`teaclave-infer demo` does the same after building the function and starting a local service.
"""

import sys

from teaclave_client.mnist_demo import main

if __name__ == "__main__":
    sys.exit(main())
