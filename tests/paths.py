"""Where the tests find the repository's files (one definition; test modules live at several
depths under tests/)."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MNIST = REPO / "functions" / "mnist"
BENCH = REPO / "bench"  # the benchmarks' scripts import each other by module name
WEB = REPO / "client" / "web"
VECTORS = REPO / "tests" / "data" / "vectors"  # artifacts made by earlier code, to stay readable
