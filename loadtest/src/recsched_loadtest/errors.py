"""The package's one exception base and its few specialisations.

The CLI maps any `LoadtestError` to a one-line message and exit code 2; everything else is a bug.
"""


class LoadtestError(Exception):
    """Base of every error the load test raises on purpose."""


class SpecError(LoadtestError):
    """A workload, schedule or sweep specification is invalid (bad CLI value or file)."""


class EndpointError(LoadtestError):
    """The endpoint is unreachable, not ready, or answered metadata/admin calls unexpectedly."""
