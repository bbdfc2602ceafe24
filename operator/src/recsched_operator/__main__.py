"""`python -m recsched_operator` is the `recsched-operator` command."""

from recsched_operator.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
