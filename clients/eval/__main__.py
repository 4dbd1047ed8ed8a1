"""`python -m memrl_clients.eval` = memrl-eval."""

import sys

from .cli import main

sys.exit(main())
