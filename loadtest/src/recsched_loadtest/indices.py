"""Sparse (embedding-table) index generators (pure).

`uniform` matches DeepRecInfra. `zipf:S` gives the skewed popularity of real traffic: rank r
of a table is drawn with probability ~ 1/(r+1)^S, exactly for the 65,536 hottest ranks and by
inverting the continuous power law beyond them (bounded memory even for 4M-row tables), then
rank -> row goes through the bijection r * 2654435761 + t mod rows, so hot rows are spread over the
table and differ per table instead of all sitting at row 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recsched_loadtest.errors import SpecError

IndexArray = npt.NDArray[np.int64]
_SPREAD_PRIME = 2_654_435_761  # prime > any table size, so multiplication mod rows is a bijection
_ZIPF_EXACT_HEAD = 65_536


@dataclass(frozen=True)
class IndexDistribution:
    """`zipf_exponent` None means uniform."""

    zipf_exponent: float | None = None

    def describe(self) -> str:
        return "uniform" if self.zipf_exponent is None else f"zipf:{self.zipf_exponent:g}"


def parse_index_spec(spec: str) -> IndexDistribution:
    kind, _, argument = spec.partition(":")
    if kind.strip().lower() == "uniform" and not argument:
        return IndexDistribution()
    if kind.strip().lower() == "zipf":
        try:
            exponent = float(argument) if argument else 1.05
        except ValueError as exc:
            raise SpecError(f"index spec {spec!r}: exponent is not a number") from exc
        if not 0 < exponent < 10:
            raise SpecError(f"index spec {spec!r}: exponent must be in (0, 10)")
        return IndexDistribution(exponent)
    raise SpecError(f"unknown index spec {spec!r}: use uniform or zipf[:EXPONENT]")


def _power_integral(low: float, high: npt.ArrayLike, exponent: float) -> npt.NDArray[np.float64]:
    """Integral of x^-exponent from low to high."""
    high_array = np.asarray(high, dtype=np.float64)
    if abs(exponent - 1.0) < 1e-9:
        return np.asarray(np.log(high_array / low))
    one_minus = 1.0 - exponent
    return np.asarray((np.power(high_array, one_minus) - low**one_minus) / one_minus)


def _zipf_ranks(
    rng: np.random.Generator, rows: int, exponent: float, shape: tuple[int, ...]
) -> IndexArray:
    """Ranks in [0, rows) with P(rank = r) ~ (r + 1)^-exponent.

    Exact for the hottest `_ZIPF_EXACT_HEAD` ranks (a cumulative table); beyond them the
    midpoint-rule continuous power law, whose error there is negligible.
    """
    head = min(rows, _ZIPF_EXACT_HEAD)
    head_weights = np.power(np.arange(1, head + 1, dtype=np.float64), -exponent)
    head_cdf = np.cumsum(head_weights)
    tail_mass = float(_power_integral(head + 0.5, rows + 0.5, exponent)) if rows > head else 0.0
    total = head_cdf[-1] + tail_mass
    draw = rng.random(shape) * total
    ranks = np.searchsorted(head_cdf, draw, side="right").astype(np.int64)
    in_tail = draw >= head_cdf[-1]
    if np.any(in_tail):
        # Invert integral_{head+0.5}^{x} t^-s dt = excess for x, then rank = round(x) - 1.
        excess = draw[in_tail] - head_cdf[-1]
        low = head + 0.5
        if abs(exponent - 1.0) < 1e-9:
            x = low * np.exp(excess)
        else:
            one_minus = 1.0 - exponent
            x = np.power(low**one_minus + excess * one_minus, 1.0 / one_minus)
        ranks[in_tail] = np.rint(x).astype(np.int64) - 1
    clipped: IndexArray = np.clip(ranks, 0, rows - 1)
    return clipped


def draw_sparse_indices(
    rng: np.random.Generator,
    distribution: IndexDistribution,
    table_rows: tuple[int, ...],
    items: int,
    lookups_per_table: int,
) -> IndexArray:
    """INT64 [items, tables, lookups]; index j of table t lies in [0, table_rows[t])."""
    indices = np.empty((items, len(table_rows), lookups_per_table), dtype=np.int64)
    for table, rows in enumerate(table_rows):
        if rows < 1:
            raise SpecError(f"table {table} has {rows} rows; every table needs at least one")
        shape = (items, lookups_per_table)
        if distribution.zipf_exponent is None:
            indices[:, table, :] = rng.integers(0, rows, shape, dtype=np.int64)
        else:
            ranks = _zipf_ranks(rng, rows, distribution.zipf_exponent, shape)
            indices[:, table, :] = (ranks * _SPREAD_PRIME + table) % rows
    return indices
