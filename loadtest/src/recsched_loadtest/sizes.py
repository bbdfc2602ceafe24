"""Query-size distributions: how many candidate items each query asks to rank (pure).

DeepRecInfra draws 32 sizes once and replays them every epoch (facts section 2.2, fidelity bug);
here every query gets a fresh draw from a seeded `numpy.random.Generator`, clipped to 1..max_items.

The default, `production`, is a stand-in for the paper's heavy-tailed production distribution,
which was never released. It keeps the median of the paper's lognormal fit (exp(5.1) = 164 items)
but widens sigma from 0.2 to 0.8: the paper's fit is far too narrow to ever produce the queries of
~1000 items that production shows (its p99.9 is 300 items), whereas sigma 0.8 gives p10 ~ 59,
p90 ~ 457 and about 1.2% of queries at the 1024 clip, which is the mass DeepRecInfra also sends
to the accelerator when sizes exceed 1024. It is a documented guess, not data: pass `file:PATH`
with a real size log when one exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from recsched_loadtest.errors import SpecError

MAX_QUERY_ITEMS = 1024
PAPER_LOGNORMAL_MU = 5.1
PAPER_LOGNORMAL_SIGMA = 0.2
PRODUCTION_LIKE_SIGMA = 0.8

SizeArray = npt.NDArray[np.int64]


class SizeDistribution(Protocol):
    """Anything that draws `count` query sizes (items) from `rng`, unclipped."""

    def describe(self) -> str: ...

    def draw_items(self, rng: np.random.Generator, count: int) -> npt.NDArray[np.float64]: ...


@dataclass(frozen=True)
class FixedSizes:
    items: int

    def describe(self) -> str:
        return f"fixed:{self.items}"

    def draw_items(self, rng: np.random.Generator, count: int) -> npt.NDArray[np.float64]:
        return np.full(count, float(self.items))


@dataclass(frozen=True)
class NormalSizes:
    mean_items: float
    std_items: float

    def describe(self) -> str:
        return f"normal:{self.mean_items:g},{self.std_items:g}"

    def draw_items(self, rng: np.random.Generator, count: int) -> npt.NDArray[np.float64]:
        return rng.normal(self.mean_items, self.std_items, count)


@dataclass(frozen=True)
class LognormalSizes:
    """numpy's parameters of the underlying normal, as in DeepRecInfra's `lognormal(mu, sigma)`."""

    mu: float
    sigma: float
    name: str = "lognormal"

    def describe(self) -> str:
        if self.name != "lognormal":
            return self.name
        return f"lognormal:{self.mu:g},{self.sigma:g}"

    def draw_items(self, rng: np.random.Generator, count: int) -> npt.NDArray[np.float64]:
        return rng.lognormal(self.mu, self.sigma, count)


@dataclass(frozen=True)
class EmpiricalSizes:
    """Resample (with replacement) from observed sizes, e.g. a production size log."""

    values_items: tuple[int, ...]
    source: str = "empirical"

    def describe(self) -> str:
        return f"file:{self.source} ({len(self.values_items)} values)"

    def draw_items(self, rng: np.random.Generator, count: int) -> npt.NDArray[np.float64]:
        values = np.asarray(self.values_items, dtype=np.float64)
        return values[rng.integers(0, len(values), count)]


PRODUCTION_LIKE = LognormalSizes(PAPER_LOGNORMAL_MU, PRODUCTION_LIKE_SIGMA, name="production")


def draw_query_sizes(
    distribution: SizeDistribution,
    rng: np.random.Generator,
    count: int,
    max_items: int = MAX_QUERY_ITEMS,
) -> SizeArray:
    """Draw `count` fresh sizes, rounded to whole items and clipped to 1..max_items."""
    raw = distribution.draw_items(rng, count)
    return np.clip(np.rint(raw), 1, max_items).astype(np.int64)


def parse_empirical_sizes(text: str, source: str = "empirical") -> EmpiricalSizes:
    """One positive integer per line (DeepRecInfra's `file` mode); blank lines and '#' skipped."""
    values: list[int] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#", 1)[0].strip()
        if not stripped:
            continue
        try:
            value = int(float(stripped))
        except ValueError as exc:
            raise SpecError(f"{source}:{line_number}: not a number: {stripped!r}") from exc
        if value < 1:
            raise SpecError(f"{source}:{line_number}: query size must be >= 1, got {value}")
        values.append(value)
    if not values:
        raise SpecError(f"{source}: no query sizes found")
    return EmpiricalSizes(tuple(values), source)


def _floats(arguments: str, expected: int, spec: str) -> list[float]:
    parts = [part for part in arguments.split(",") if part.strip()]
    if len(parts) != expected:
        raise SpecError(f"size spec {spec!r}: expected {expected} comma-separated numbers")
    try:
        values = [float(part) for part in parts]
    except ValueError as exc:
        raise SpecError(f"size spec {spec!r}: not a number") from exc
    if not all(math.isfinite(value) for value in values):
        raise SpecError(f"size spec {spec!r}: numbers must be finite")
    return values


def parse_size_spec(spec: str, file_text: str | None = None) -> SizeDistribution:
    """Parse `fixed:N`, `normal:MEAN,STD`, `lognormal:MU,SIGMA`, `paper`, `production` or
    `file:PATH` (the caller reads PATH and passes its text as `file_text`)."""
    kind, _, arguments = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "production":
        return PRODUCTION_LIKE
    if kind == "paper":
        return LognormalSizes(PAPER_LOGNORMAL_MU, PAPER_LOGNORMAL_SIGMA)
    if kind == "fixed":
        (items,) = _floats(arguments, 1, spec)
        if items < 1 or items != int(items):
            raise SpecError(f"size spec {spec!r}: fixed size must be a whole number >= 1")
        return FixedSizes(int(items))
    if kind == "normal":
        mean_items, std_items = _floats(arguments, 2, spec)
        if std_items < 0:
            raise SpecError(f"size spec {spec!r}: std must be >= 0")
        return NormalSizes(mean_items, std_items)
    if kind == "lognormal":
        mu, sigma = _floats(arguments, 2, spec)
        if sigma < 0:
            raise SpecError(f"size spec {spec!r}: sigma must be >= 0")
        return LognormalSizes(mu, sigma)
    if kind == "file":
        if file_text is None:
            raise SpecError(f"size spec {spec!r}: the file's contents were not provided")
        return parse_empirical_sizes(file_text, arguments)
    raise SpecError(
        f"unknown size spec {spec!r}: use fixed:N, normal:MEAN,STD, lognormal:MU,SIGMA, "
        "paper, production or file:PATH"
    )
