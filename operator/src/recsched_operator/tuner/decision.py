"""One tuner decision: what to serve next and why, in words an operator can act on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from recsched_operator.tuner.knobs import KnobConfig

Action = Literal["hold", "probe", "accept", "rollback", "converge", "retune", "recommend"]
"""hold: keep serving, nothing to learn yet or nothing to do. probe: try a neighbour. accept: a
probe beat the incumbent and stays (the next probe follows in the same decision when one is left,
reported as `probe`). rollback: a probe lost or load moved; back to the incumbent. converge: no
neighbour is better; stay. retune: drift or a new SLO restarted the search. recommend: reported, not
applied (recommend mode: the calibrated simulator's advice where it can forecast, else what `auto`
would do)."""


@dataclass(frozen=True)
class Decision:
    """`config` is what to serve next; `after` is what the tuner wants (differs from `config`
    only in recommend mode); `changed` is whether `config` differs from `before`."""

    action: Action
    reason: str
    config: KnobConfig
    changed: bool
    before: KnobConfig
    after: KnobConfig

    @classmethod
    def hold(cls, current: KnobConfig, reason: str) -> Decision:
        return cls("hold", reason, current, False, current, current)

    @classmethod
    def move(cls, action: Action, current: KnobConfig, target: KnobConfig, reason: str) -> Decision:
        return cls(action, reason, target, target != current, current, target)

    def to_dict(self) -> dict[str, object]:
        """The shape stored as `status.lastDecision`."""
        return {
            "action": self.action,
            "reason": self.reason,
            "changed": self.changed,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "config": self.config.to_dict(),
        }
