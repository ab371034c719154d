"""``python -m dd_bench.cli``: the ``dd-bench`` command."""

import sys

from . import main

sys.exit(main())
