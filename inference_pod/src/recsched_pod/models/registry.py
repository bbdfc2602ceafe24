"""Model names to configs and builders: the zoo's one public entry point.

`model_spec` answers from the config alone (no weights), so the server can validate and publish
metadata, and the load test can size queries, before or without building a multi-GB model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from recsched_pod.models.base import RecommendationModel
from recsched_pod.models.configs import (
    PAPER_CONFIGS,
    DienConfig,
    DinConfig,
    DlrmConfig,
    MultiTaskWideAndDeepConfig,
    NcfConfig,
    WideAndDeepConfig,
    ZooConfig,
    check_scale,
)
from recsched_pod.models.dien import DeepInterestEvolutionNetwork
from recsched_pod.models.din import DeepInterestNetwork
from recsched_pod.models.dlrm import Dlrm
from recsched_pod.models.errors import InvalidModelOptionError, UnknownModelError
from recsched_pod.models.ncf import NeuralCollaborativeFiltering
from recsched_pod.models.spec import ModelInputSpec
from recsched_pod.models.wide_and_deep import MultiTaskWideAndDeep, WideAndDeep

MODEL_NAMES: tuple[str, ...] = ("rmc1", "rmc2", "rmc3", "ncf", "wnd", "mtwnd", "din", "dien")

_Builder = Callable[[Any, float, torch.Generator], RecommendationModel]
_BUILDERS: dict[type, _Builder] = {
    DlrmConfig: Dlrm,
    NcfConfig: NeuralCollaborativeFiltering,
    WideAndDeepConfig: WideAndDeep,
    MultiTaskWideAndDeepConfig: MultiTaskWideAndDeep,
    DinConfig: DeepInterestNetwork,
    DienConfig: DeepInterestEvolutionNetwork,
}


def model_options(name: str) -> dict[str, int | str]:
    """The options `name` takes, with their defaults (empty for models without options)."""
    return dict(model_config(name).option_values())


def model_config(name: str, **options: object) -> ZooConfig:
    """The architecture of `name` with `options` applied; raises on unknown names or options.

    Integer options given as decimal strings (from a CLI or environment) are converted.
    """
    if name not in MODEL_NAMES:
        raise UnknownModelError(name, MODEL_NAMES)
    base = PAPER_CONFIGS[name]
    unknown = sorted(set(options) - set(base.OPTIONS))
    if unknown:
        valid = ", ".join(base.OPTIONS) or "none"
        raise InvalidModelOptionError(
            f"model {name} has no option {', '.join(unknown)}; its options: {valid}",
        )
    typed: dict[str, Any] = {
        option: _coerce(value, getattr(base, option)) for option, value in options.items()
    }
    return dataclasses.replace(base, **typed)


def model_spec(name: str, scale: float = 0.01, **options: object) -> ModelInputSpec:
    """What `build_model(name, scale, **options)` takes and returns, without building weights."""
    return model_config(name, **options).input_spec(check_scale(scale))


def build_model(
    name: str, scale: float = 0.01, seed: int = 0, **options: object
) -> RecommendationModel:
    """Build `name` with seeded weights, in eval mode, parameters frozen, on the CPU.

    Embedding rows are the paper's x `scale` (floor 1,000 per table). The same name, scale, seed
    and options always give the same weights. The global torch RNG is left as it was.
    """
    config = model_config(name, **options)
    checked_scale = check_scale(scale)
    generator = torch.Generator().manual_seed(seed)
    # nn.Linear / nn.GRU draw default weights from the global RNG before we overwrite them.
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        model = _BUILDERS[type(config)](config, checked_scale, generator)
    model.requires_grad_(False)
    return model.eval()


def _coerce(value: object, default: object) -> object:
    if isinstance(default, int) and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value  # the config's own check names the option and the bad value
    return value
