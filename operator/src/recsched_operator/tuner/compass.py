"""Where to probe next: a compass search on the log2 grid with memory, momentum and hints.

From the incumbent the search tries one knob at a time, `step` grid positions up or down. The
order of the tries is what makes it fast from a bad corner:

* the knob moved last goes first (momentum), else the batch when the CPU pool is overloaded, else
  the threshold when one pool is twice as busy as the other (the offload split is then the
  bottleneck, and no batch size can fix it), else the batch; while the GPU pool is overloaded,
  both knobs move at once first (`joint_escape`);
* the direction that last succeeded goes first; without history, the threshold moves toward the
  pool with headroom (raise T when the GPU pool is busier) and the batch size shrinks when tail
  latency outruns CPU utilisation (requests too coarse) and grows otherwise (workers too busy);
* configurations already tried in this search at comparable load are skipped (losers stay lost);
* a neighbour that tied gets one look past it before the search turns back (flat stretches hide
  better points); when both directions fail at a step, the step is halved; when every neighbour
  at step 1 is known not to be better, each knob gets one look two positions out in its hinted
  direction (cost curves have bumps), and then the search has converged.
"""

from __future__ import annotations

from dataclasses import dataclass

from recsched_operator.tuner.knobs import KNOBS, Knob, KnobConfig, TuningBounds
from recsched_operator.tuner.observation import Observation
from recsched_operator.tuner.settings import SloTarget, TuningSettings
from recsched_operator.tuner.state import TuningState


@dataclass(frozen=True)
class Candidate:
    """A neighbour to probe: `config` is the incumbent with `knob` moved `direction * step`."""

    config: KnobConfig
    knob: Knob
    direction: int
    step: int
    joint: bool = False
    jump: bool = False
    """The threshold's leap to the mean query size (`offload_jump`)."""
    diagonal: bool = False
    """Both knobs one position the same way, the last look before converging."""
    confirm: bool = False
    """A config that tied the incumbent, measured once more before converging."""

    def describe(self, incumbent: KnobConfig) -> str:
        word = "larger" if self.direction > 0 else "smaller"
        if self.diagonal:
            return (
                f"probing a {word} batch and threshold together: the threshold moves work "
                "between the pools, and the batch size that suits the CPU pool moves with it"
            )
        if self.joint:
            return (
                f"probing both knobs at once ({self.step} grid step(s) each): the GPU pool is "
                "overloaded"
            )
        if self.confirm:
            return (
                "measuring a config that tied within the noise band once more before "
                "converging: the incumbent's reference may be one lucky window"
            )
        if self.jump:
            return (
                "offloading the queries above the mean size: the GPU pool gets almost none "
                "while the CPU pool is busy"
            )
        return f"probing a {word} {self.knob} ({self.step} grid step(s))"


def load_comparable(qps: float | None, reference_qps: float | None, fraction: float) -> bool:
    """Whether two measurements were taken at loads within `fraction` of each other."""
    if qps is None or reference_qps is None:
        return False
    return abs(qps - reference_qps) <= fraction * max(reference_qps, 1e-9)


def _lost_ceiling_qps(state: TuningState, settings: TuningSettings) -> float | None:
    """Highest load at which a measurement over the target still proves a config lost now: about
    the incumbent's load, while the incumbent meets the target (None otherwise)."""
    target = state.slo_target_ms
    if target is None or state.reference_qps is None or (state.reference_ms or 0.0) > target:
        return None
    return state.reference_qps * (1 + settings.comparable_load_fraction)


def known_configs(state: TuningState, settings: TuningSettings) -> set[KnobConfig]:
    """Configs whose verdict in this search still holds: tried at comparable load, or incumbent."""
    known = {
        trial.config
        for trial in state.trials
        if trial.epoch == state.epoch
        and load_comparable(trial.qps, state.reference_qps, settings.comparable_load_fraction)
    }
    # While the incumbent meets the target, a config measured over that target at no more than
    # about this load stays lost, in this search or an earlier one: latency only grows with
    # load, so it would break the target again and be rolled back ("broke-slo"). A load rise, an
    # SLO edit or a search still running when the load stepped up otherwise re-probes such
    # configs, each an interval over target.
    # Likewise a config whose capacity use, scaled to this load (utilisation grows in proportion
    # to it), reaches 1: measured at 84% busy before a +50% load step, it would be overloaded now
    # (WnD's drift run, issue 15).
    ceiling = _lost_ceiling_qps(state, settings)
    target = state.slo_target_ms
    qps = state.reference_qps
    if ceiling is not None and target is not None and qps is not None:
        known |= {
            trial.config
            for trial in state.trials
            if (trial.latency_ms > target and trial.qps <= ceiling)
            or trial.use * qps / max(trial.qps, 1e-9) >= 1.0
        }
    if state.incumbent is not None:
        known.add(state.incumbent)
    return known


def swamped_threshold(state: TuningState, settings: TuningSettings) -> int | None:
    """The largest threshold measured with the GPU pool overloaded and the target broken, at no
    more than about the incumbent's load (None if none).

    The GPU pool's work depends on the threshold alone (whole queries of that size and up), not
    on the batch size, so every config at or below that threshold swamps the GPU pool again,
    whatever its batch size: probing one costs an interval far over target (a search that had
    learnt T = 128 swamps the GPU at B = 64 tried it again at B = 256: rmc2, issue 15).
    """
    target = state.slo_target_ms
    if target is None or state.reference_qps is None:
        return None
    # Unlike `known_configs`, this holds while the incumbent is over the target too.
    ceiling = state.reference_qps * (1 + settings.comparable_load_fraction)
    swamped = [
        trial.config.offload_threshold
        for trial in state.trials
        if (trial.gpu_utilization or 0.0) >= 1.0
        and trial.latency_ms > target
        and trial.qps <= ceiling
    ]
    return max(swamped, default=None)


def _pool_pressure(observation: Observation) -> tuple[float | None, float | None]:
    """(cpu, gpu) pressure: utilisation where both pools report it, else per-pool p95."""
    if observation.cpu_utilization is not None and observation.gpu_utilization is not None:
        return observation.cpu_utilization, observation.gpu_utilization
    return observation.cpu_p95_ms, observation.gpu_p95_ms


def pools_imbalanced(observation: Observation, settings: TuningSettings) -> bool:
    """One pool at least `imbalance_ratio` times busier than the other; an unused GPU pool
    counts as imbalanced once the CPU pool is half busy."""
    cpu, gpu = _pool_pressure(observation)
    if gpu is None and observation.cpu_utilization is not None:
        return observation.cpu_utilization >= 0.5
    if cpu is None or gpu is None or cpu <= 0 or gpu <= 0:
        return False
    return max(cpu, gpu) / min(cpu, gpu) >= settings.imbalance_ratio


def knob_order(
    state: TuningState, observation: Observation, bounds: TuningBounds, settings: TuningSettings
) -> list[Knob]:
    movable = [knob for knob in KNOBS if len(bounds.grid(knob)) > 1]
    cpu_busy, gpu_busy = observation.cpu_utilization, observation.gpu_utilization
    if (
        "threshold" in movable
        and gpu_busy is not None
        and gpu_busy >= 1.0
        and gpu_busy > (cpu_busy or 0.0)
    ):
        # No batch size relieves an overloaded GPU pool: its work depends on the threshold
        # alone (MTWnD on the H200 spent decisions 11-14 on batch sizes at T = 32).
        first: Knob = "threshold"
    elif state.focus_knob in movable:
        first = state.focus_knob
    elif cpu_busy is not None and cpu_busy >= 1.0:
        first = "batch"
    elif "threshold" in movable and pools_imbalanced(observation, settings):
        first = "threshold"
    else:
        first = movable[0] if movable else "batch"
    return sorted(movable, key=lambda knob: knob != first)


def direction_order(
    knob: Knob,
    incumbent: KnobConfig,
    state: TuningState,
    observation: Observation,
    bounds: TuningBounds,
    slo: SloTarget,
) -> tuple[int, int]:
    """Which way to try `knob` first: momentum, else what the observation points at; for the
    threshold, an overloaded pool overrides momentum (send it fewer queries: a jump or a step
    that overshot into swamping the GPU pool is undone first, not pushed further)."""
    if knob == "threshold":
        cpu_use, gpu_use = observation.cpu_utilization, observation.gpu_utilization
        if gpu_use is not None and gpu_use >= 1.0 and (cpu_use is None or gpu_use > cpu_use):
            return (1, -1)
        if cpu_use is not None and cpu_use >= 1.0 and gpu_use is not None and cpu_use > gpu_use:
            return (-1, 1)
    remembered = state.direction(knob)
    if remembered:
        return (remembered, -remembered)
    if knob == "threshold":
        cpu, gpu = _pool_pressure(observation)
        if gpu is None:
            return (-1, 1)  # nothing offloaded yet: see whether the GPU pool helps
        if cpu is None or gpu > cpu:
            return (1, -1)  # the GPU pool is the busier one: send it fewer queries
        return (-1, 1)
    latency = observation.latency_ms(slo.percentile)
    busy = observation.cpu_utilization
    if busy is not None and busy >= 1.0:
        return (1, -1)  # CPU workers cannot keep up: spend less per item
    if latency is not None and busy is not None:
        # Latency high while workers idle: requests too coarse, split finer. Busy workers: batch
        # more items per request to spend less per item.
        return (-1, 1) if latency / slo.target_ms > busy else (1, -1)
    grid = bounds.grid(knob)
    index = grid.index(bounds.move(incumbent, knob, 0).value(knob))
    return (1, -1) if index < (len(grid) - 1) / 2 else (-1, 1)


def joint_escape(
    incumbent: KnobConfig,
    state: TuningState,
    observation: Observation,
    bounds: TuningBounds,
    settings: TuningSettings,
) -> Candidate | None:
    """Both knobs at once while the GPU pool is overloaded, e.g. from a corner like B = 1, T = 32.

    There a single step rarely helps: raising the threshold alone moves work from the overloaded
    GPU pool onto CPUs that waste it on one-item requests, and raising the batch alone relieves a
    pool that is not the bottleneck. The diagonal does both: a larger batch (cheaper items on CPU)
    with a larger threshold. (An overloaded CPU pool alone needs only the larger batch, which
    `direction_order` tries first.) If the diagonal loses, the single steps follow.
    """
    gpu = observation.gpu_utilization
    if gpu is None or gpu < 1.0:
        return None
    step = state.step("batch") or settings.initial_step
    config = bounds.move(bounds.move(incumbent, "batch", step), "threshold", step)
    if config.batch_size == incumbent.batch_size or (
        config.offload_threshold == incumbent.offload_threshold
    ):
        return None
    return Candidate(config, "threshold", 1, step, joint=True)


def overloaded(state: TuningState, settings: TuningSettings) -> bool:
    """The incumbent's capacity use is that of an overloaded pool (`objective.capacity_use` puts
    its latency at the cap) or of latency ten times the target: not a noisy window of a config
    near its target, which only exceeds 1 by a little."""
    return (state.reference_use or 0.0) >= settings.overload_latency_ratio


def offload_jump(
    incumbent: KnobConfig,
    observation: Observation,
    bounds: TuningBounds,
) -> Candidate | None:
    """The threshold straight down to the mean query size while the GPU pool gets (almost)
    nothing and the CPU pool is busy.

    Every threshold above the larger query sizes offloads (almost) nothing, so one grid step at
    a time from "off" crosses a flat stretch where neighbours only tie, and with a narrow size
    mix (the paper's lognormal: p99 261 items) that stretch is four of the threshold's seven
    positions. Offloading the queries above the mean size is the first move that tells whether
    the GPU pool helps; if it loses, the ordinary steps follow.
    """
    if len(bounds.grid("threshold")) < 2 or observation.mean_query_items is None:
        return None
    offloaded = observation.offloaded_fraction or 0.0
    cpu = observation.cpu_utilization
    if offloaded >= 0.01 or cpu is None or cpu < 0.5:
        return None
    grid = bounds.grid("threshold")
    below = [t for t in grid if t <= observation.mean_query_items]
    target = below[-1] if below else grid[0]
    if target >= incumbent.offload_threshold:
        return None
    steps = grid.index(bounds.move(incumbent, "threshold", 0).offload_threshold) - grid.index(
        target
    )
    return Candidate(incumbent.with_value("threshold", target), "threshold", -1, steps, jump=True)


def pick_candidate(
    incumbent: KnobConfig,
    state: TuningState,
    observation: Observation,
    bounds: TuningBounds,
    settings: TuningSettings,
    slo: SloTarget,
) -> Candidate | None:
    """The next neighbour to probe, or None when the search has converged.

    Steps longer than one grid position are taken only while the incumbent is far from good
    (capacity use above 1: overloaded or over the target); near a feasible optimum the search
    moves one position at a time, so it does not overshoot into an SLO breach and back.
    """
    known = known_configs(state, settings)
    swamped = swamped_threshold(state, settings)
    if swamped is not None and state.incumbent is not None:
        swamped = min(swamped, state.incumbent.offload_threshold - 1)
        known |= {config for config in bounds.configs() if config.offload_threshold <= swamped}
    ties = {
        trial.config
        for trial in state.trials
        if trial.epoch == state.epoch and trial.verdict == "tie" and trial.config in known
    }
    escape = joint_escape(incumbent, state, observation, bounds, settings)
    if escape is not None and escape.config not in known:
        return escape
    far = (state.reference_use or 0.0) > 1.0
    for knob in knob_order(state, observation, bounds, settings):
        jump = offload_jump(incumbent, observation, bounds) if knob == "threshold" else None
        if jump is not None and jump.config not in known:
            return jump
        longest = (state.step(knob) or settings.initial_step) if far else 1
        # The hinted direction at shrinking steps before the other direction: a long step that
        # lost in the direction the pools point to (say, a threshold that swamped the GPU pool
        # after the CPU pool was the bottleneck) brackets the optimum on that side.
        for direction in direction_order(knob, incumbent, state, observation, bounds, slo):
            step = longest
            while step >= 1:
                config = bounds.move(incumbent, knob, direction * step)
                if config not in known:
                    return Candidate(config, knob, direction, step)
                if config in ties:
                    # A flat stretch (two batch sizes costing the same per item) can hide a
                    # better point behind it: look one position further before turning back.
                    beyond = bounds.move(config, knob, direction)
                    if beyond not in known:
                        return Candidate(beyond, knob, direction, step + 1)
                step //= 2
    # Before converging, one look two positions out in the direction the observation points
    # at: a measured cost curve can have a bump (one batch size slower per item than both its
    # neighbours) that a one-step search cannot see past. While the incumbent is overloaded
    # (`overloaded`), a flat stretch is no reason to stop: a threshold above
    # nearly every query size offloads nothing, so its neighbours all look the same, and the
    # search looks further out along each knob, nearest first, until it finds ground or runs out.
    stuck = overloaded(state, settings)
    reach = max(len(bounds.grid(knob)) for knob in KNOBS) if stuck else 2
    for distance in range(2, reach + 1):
        for knob in knob_order(state, observation, bounds, settings):
            directions = direction_order(knob, incumbent, state, observation, bounds, slo)
            # Near a feasible optimum only the hinted direction, or the other one when the
            # hinted one runs into a bound (momentum carried the knob to its end).
            open_ = [d for d in directions if bounds.move(incumbent, knob, d) != incumbent]
            for direction in open_ if stuck else open_[:1]:
                config = bounds.move(incumbent, knob, distance * direction)
                nearer = bounds.move(incumbent, knob, (distance - 1) * direction)
                if config not in known and config != nearer:
                    return Candidate(config, knob, direction, distance)
    # Last, the diagonals along which the knobs interact: a larger threshold hands the CPU pool
    # more queries, which a larger batch serves cheaper per item (and the reverse). A search
    # one knob at a time stops a step short of an optimum that needs both moved.
    if all(len(bounds.grid(knob)) > 1 for knob in KNOBS):
        for direction in (1, -1):
            config = bounds.move(bounds.move(incumbent, "batch", direction), "threshold", direction)
            moved = all(config.value(knob) != incumbent.value(knob) for knob in KNOBS)
            if moved and config not in known:
                return Candidate(config, "threshold", direction, 1, joint=True, diagonal=True)
    return confirm_tie(incumbent, state, settings, slo)


def confirm_tie(
    incumbent: KnobConfig, state: TuningState, settings: TuningSettings, slo: SloTarget
) -> Candidate | None:
    """The best config that tied the incumbent in this search, probed once more, before
    converging (once per search).

    An accepted probe's reference is the one window that won it its place, so it leans lucky
    (the winner's curse), and with 2% noise on utilisation a neighbour 5-7% better can tie it
    (issue 15: dien CPU-only, batch 128 kept over 256 and 512; rmc3 on the H200, threshold 32
    over 64, both at 92-94% of the optimum). By the time the search would converge the
    incumbent has been measured again, so a second look at the best tie is judged against a
    steadier reference.
    """
    mine = [trial for trial in state.trials if trial.epoch == state.epoch]
    configs = [trial.config for trial in mine]
    if any(configs.count(config) > 1 for config in configs):
        return None  # one second look per search
    ties = [
        trial
        for trial in mine
        if trial.verdict == "tie"
        and trial.config != incumbent
        and trial.latency_ms <= slo.target_ms
        and load_comparable(trial.qps, state.reference_qps, settings.comparable_load_fraction)
    ]
    best = min(ties, key=lambda trial: trial.use, default=None)
    if best is None:
        return None
    moved = [knob for knob in KNOBS if best.config.value(knob) != incumbent.value(knob)]
    knob = moved[0] if len(moved) == 1 else "threshold"
    direction = 1 if best.config.value(knob) > incumbent.value(knob) else -1
    return Candidate(best.config, knob, direction, 1, joint=len(moved) > 1, confirm=True)
