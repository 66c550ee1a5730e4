"""`teaclave-client`, the command line: one module per command group (`local`: keygen,
encrypt, decrypt, prepare-image; `account`: login, logout, user; `functions`; `data`; `tasks`;
`infer`), what they share in `common`, the parser and `main` in `main`."""

from .main import main

__all__ = ["main"]
