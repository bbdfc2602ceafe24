"""`python -m recsched_pod` runs the same CLI as `recsched-pod`."""

import sys

from recsched_pod.cli import main

sys.exit(main())
