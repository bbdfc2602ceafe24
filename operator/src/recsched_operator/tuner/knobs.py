"""The two knobs DeepRecSched tunes, their bounds, and the log2 grid the search walks on.

Batch size B and offload threshold T both act multiplicatively (splitting a 512-item query at 32 or
64 halves the request count; offloading from 256 or 512 items halves the offloaded share roughly),
so the search moves in log2 space: the grid holds the powers of two strictly inside the bounds
plus both bounds, and a step is a move of whole grid positions. A threshold above
`MAX_QUERY_ITEMS` sends nothing to the GPU pool: `threshold_max = 1025` reads "offload off".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

MAX_QUERY_ITEMS = 1024
"""Largest query size (DeepRecInfra clips sizes to 1024); a threshold above it offloads nothing."""

Knob = Literal["batch", "threshold"]
KNOBS: tuple[Knob, Knob] = ("batch", "threshold")


@dataclass(frozen=True, order=True)
class KnobConfig:
    """A configuration to serve: items per CPU request, and the query size sent whole to the GPU."""

    batch_size: int
    offload_threshold: int

    def value(self, knob: Knob) -> int:
        return self.batch_size if knob == "batch" else self.offload_threshold

    def with_value(self, knob: Knob, value: int) -> KnobConfig:
        if knob == "batch":
            return KnobConfig(value, self.offload_threshold)
        return KnobConfig(self.batch_size, value)

    def describe(self) -> str:
        return f"batch {self.batch_size}, threshold {describe_threshold(self.offload_threshold)}"

    def to_dict(self) -> dict[str, int]:
        return {"batchSize": self.batch_size, "offloadThreshold": self.offload_threshold}

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> KnobConfig:
        return cls(int(data["batchSize"]), int(data["offloadThreshold"]))


def describe_threshold(threshold: int) -> str:
    return "off" if threshold > MAX_QUERY_ITEMS else str(threshold)


def describe_knob_value(knob: Knob, value: int) -> str:
    return str(value) if knob == "batch" else describe_threshold(value)


def knob_grid(low: int, high: int) -> tuple[int, ...]:
    """Both bounds and every power of two strictly between them, ascending."""
    if not 1 <= low <= high:
        raise ValueError(f"invalid knob range [{low}, {high}]")
    powers = {2**k for k in range(int(math.log2(high)) + 2) if low < 2**k < high}
    return tuple(sorted({low, high} | powers))


def nearest_grid_index(grid: tuple[int, ...], value: int) -> int:
    """Index of the grid point closest to `value` in log space (ties go to the lower one)."""
    log_value = math.log2(max(value, 1))
    distances = [abs(math.log2(point) - log_value) for point in grid]
    return distances.index(min(distances))


@dataclass(frozen=True)
class TuningBounds:
    """Inclusive bounds of the search, in items. `threshold_max > 1024` includes "offload off";
    `threshold_min == threshold_max` pins the threshold (no GPU pool)."""

    batch_min: int = 1
    batch_max: int = MAX_QUERY_ITEMS
    threshold_min: int = 32
    threshold_max: int = MAX_QUERY_ITEMS + 1

    def __post_init__(self) -> None:
        if not 1 <= self.batch_min <= self.batch_max:
            raise ValueError(f"batch bounds [{self.batch_min}, {self.batch_max}] are invalid")
        if not 1 <= self.threshold_min <= self.threshold_max:
            raise ValueError(
                f"threshold bounds [{self.threshold_min}, {self.threshold_max}] are invalid"
            )

    def grid(self, knob: Knob) -> tuple[int, ...]:
        if knob == "batch":
            return knob_grid(self.batch_min, self.batch_max)
        return knob_grid(self.threshold_min, self.threshold_max)

    def contains(self, config: KnobConfig) -> bool:
        return (
            self.batch_min <= config.batch_size <= self.batch_max
            and self.threshold_min <= config.offload_threshold <= self.threshold_max
        )

    def clamp(self, config: KnobConfig) -> KnobConfig:
        return KnobConfig(
            min(max(config.batch_size, self.batch_min), self.batch_max),
            min(max(config.offload_threshold, self.threshold_min), self.threshold_max),
        )

    def move(self, config: KnobConfig, knob: Knob, grid_steps: int) -> KnobConfig:
        """`config` with `knob` moved by `grid_steps` grid positions, stopping at the bounds."""
        grid = self.grid(knob)
        value = config.value(knob)
        if value in grid:
            index = grid.index(value)
        elif grid_steps > 0:
            # Off-grid values (set by hand) move to the next grid point in that direction first.
            index = sum(1 for point in grid if point < value) - 1
        else:
            index = sum(1 for point in grid if point <= value)
        target = min(max(index + grid_steps, 0), len(grid) - 1)
        return config.with_value(knob, grid[target])

    def configs(self) -> list[KnobConfig]:
        """Every grid configuration (for exhaustive baselines in the simulator)."""
        return [KnobConfig(b, t) for b in self.grid("batch") for t in self.grid("threshold")]
