"""`python -m teaclave_client.cli`: the `teaclave-client` command."""

import sys

from .main import main

sys.exit(main())
