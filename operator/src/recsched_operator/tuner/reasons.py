"""Wording of decision reasons: the numbers an operator reads in Events and the status."""

from __future__ import annotations

from recsched_operator.tuner.knobs import KNOBS, KnobConfig, describe_knob_value


def describe_change(before: KnobConfig, after: KnobConfig) -> str:
    """'batch 64->128' / 'threshold 256->off' / both, or the config when nothing changes."""
    parts = [
        f"{knob} {describe_knob_value(knob, before.value(knob))}->"
        f"{describe_knob_value(knob, after.value(knob))}"
        for knob in KNOBS
        if before.value(knob) != after.value(knob)
    ]
    return ", ".join(parts) if parts else after.describe()


def format_ms(value: float) -> str:
    return f"{value:.1f} ms"


def format_change(new: float, old: float | None) -> str:
    """'+25%' for new = 1.25 * old; '+0%' when there is no old value to compare with."""
    if old is None or old <= 0:
        return "+0%"
    return f"{(new / old - 1) * 100:+.0f}%"
