"""Errors of the model zoo.

Both are `ValueError`s: they describe a bad request for a model (a name or an option), never a
failure of the model itself, so the server can map them to a client error in one place.
"""

from __future__ import annotations

from collections.abc import Iterable


class ModelZooError(ValueError):
    """Base of every error the model zoo raises on purpose."""


class UnknownModelError(ModelZooError):
    """A model name that is not in the zoo; the message lists the valid names."""

    def __init__(self, name: str, valid_names: Iterable[str]) -> None:
        self.name = name
        self.valid_names = tuple(valid_names)
        super().__init__(
            f"unknown model {name!r}; valid models: {', '.join(self.valid_names)}",
        )


class InvalidModelOptionError(ModelZooError):
    """An option a model does not take, or a value outside what it accepts."""
