"""`python -m memrl_server ...` is the `memrl` command."""

import sys

from .entry import main

sys.exit(main())
