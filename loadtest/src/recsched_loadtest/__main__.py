"""`python -m recsched_loadtest`: same as the `recsched-loadtest` console script."""

import sys

from recsched_loadtest.cli import main

sys.exit(main())
