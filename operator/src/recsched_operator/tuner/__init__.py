"""Online DeepRecSched: the tuning policy (a pure core), the simulator, and the cycle around them.

`decide_next_config` maps one observation window to the next config and a new `TuningState`; the
caller supplies time and stores the state (RecModel status or a local file). The pure core, by
role: `knobs` (configs, bounds, grid), `settings` (SLO, tuner settings, modes), `observation`,
`state`, `decision`, `objective` (what the search minimises), `compass` (where to probe next),
`probing` (one step of a running search), `reasons` (wording), `policy` (the decision flow).
Around it: `simulation/` (the queueing simulator), `prometheus_source` (observations from
Prometheus), `bridge` (RecModel spec -> tuner inputs), `outcome` and `cycle` (observe -> decide ->
actuate -> record, behind an observation source and an actuator). Only the core and the simulator
are pure; `.importlinter` checks it.
"""

from recsched_operator.tuner.decision import Action, Decision
from recsched_operator.tuner.knobs import (
    MAX_QUERY_ITEMS,
    Knob,
    KnobConfig,
    TuningBounds,
    knob_grid,
)
from recsched_operator.tuner.observation import Observation
from recsched_operator.tuner.policy import decide_next_config
from recsched_operator.tuner.reasons import describe_change
from recsched_operator.tuner.settings import SloTarget, TuningMode, TuningSettings
from recsched_operator.tuner.state import Trial, TuningState, initial_state

__all__ = [
    "MAX_QUERY_ITEMS",
    "Action",
    "Decision",
    "Knob",
    "KnobConfig",
    "Observation",
    "SloTarget",
    "Trial",
    "TuningBounds",
    "TuningMode",
    "TuningSettings",
    "TuningState",
    "decide_next_config",
    "describe_change",
    "initial_state",
    "knob_grid",
]
