"""`python -m memrl_server ...` is the `memrl` command."""

import sys

from .cli import main

sys.exit(main())
