"""The architecture numbers of the eight DeepRecInfra models, as frozen dataclasses.

Numbers come from the released configs (`harvard-acc/DeepRecSys`, `models/configs/*.json`; see
`research/deeprecsys-facts.md` section 1.1). Table rows are the paper's (scale 1.0); the zoo
multiplies them by `scale` with a floor of `MIN_TABLE_ROWS`. MLP widths list layer *outputs*:
each layer's input is the previous width, the first layer's input follows from the architecture.

A field listed in a config's `OPTIONS` can be overridden by `build_model(name, **options)`; every
other number is fixed, so a model name always means the same architecture family.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from recsched_pod.models.errors import InvalidModelOptionError
from recsched_pod.models.spec import ModelInputSpec, OptionValue

MIN_TABLE_ROWS = 1_000
"""Floor on rows per table, so tiny scales keep realistic index ranges and distinct rows."""


ScoreActivation = Literal["softmax", "relu"]
LAST_ACTIVATIONS: tuple[ScoreActivation, ...] = ("softmax", "relu")
"""DIN and DIEN endings: the papers' 2-way click softmax, or the released code's ReLU."""


def scaled_rows(paper_rows: int, scale: float) -> int:
    """Rows of a table at `scale`: paper rows x scale, rounded, at least `MIN_TABLE_ROWS`."""
    return max(MIN_TABLE_ROWS, round(paper_rows * scale))


def check_scale(scale: float) -> float:
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise InvalidModelOptionError(f"scale must be a number, got {scale!r}")
    if not math.isfinite(scale) or scale <= 0:
        raise InvalidModelOptionError(f"scale must be finite and > 0, got {scale!r}")
    return float(scale)


def _check_positive_int(option: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidModelOptionError(f"option {option} must be an integer >= 1, got {value!r}")


def _check_choice(option: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidModelOptionError(
            f"option {option} must be one of {', '.join(choices)}, got {value!r}",
        )


@dataclass(frozen=True)
class _ZooConfig:
    """Fields every model config shares; subclasses add their architecture."""

    OPTIONS: ClassVar[tuple[str, ...]] = ()

    name: str
    embedding_dim: int
    lookups_per_table: int

    def paper_table_rows(self) -> tuple[int, ...]:
        raise NotImplementedError

    def dense_features(self) -> int:
        return 0

    def output_width(self) -> int:
        raise NotImplementedError

    def option_values(self) -> tuple[tuple[str, OptionValue], ...]:
        values: list[tuple[str, OptionValue]] = []
        for option in sorted(self.OPTIONS):
            value = getattr(self, option)
            assert isinstance(value, int | str)
            values.append((option, value))
        return tuple(values)

    def input_spec(self, scale: float) -> ModelInputSpec:
        return ModelInputSpec(
            name=self.name,
            dense_features=self.dense_features(),
            table_rows=tuple(scaled_rows(rows, scale) for rows in self.paper_table_rows()),
            lookups_per_table=self.lookups_per_table,
            output_width=self.output_width(),
            options=self.option_values(),
            scale=scale,
        )


@dataclass(frozen=True)
class _ListedTables(_ZooConfig):
    """Models whose tables are listed one by one."""

    table_rows: tuple[int, ...]

    def paper_table_rows(self) -> tuple[int, ...]:
        return self.table_rows


@dataclass(frozen=True)
class _DenseAndTables(_ListedTables):
    """Models that also take a vector of dense features."""

    dense_input: int

    def dense_features(self) -> int:
        return self.dense_input


@dataclass(frozen=True)
class DlrmConfig(_DenseAndTables):
    """DLRM-RMC1/2/3: bottom MLP on dense features, sum-pooled tables, concat, top MLP."""

    bottom_mlp: tuple[int, ...]
    top_mlp: tuple[int, ...]

    def __post_init__(self) -> None:
        # Concat interaction stacks the bottom-MLP output with the embeddings: widths must agree.
        assert self.bottom_mlp[-1] == self.embedding_dim

    def output_width(self) -> int:
        return self.top_mlp[-1]


@dataclass(frozen=True)
class NcfConfig(_ListedTables):
    """NCF: GMF path over tables 0-1, MLP path over tables 2-3, one final FC."""

    OPTIONS: ClassVar[tuple[str, ...]] = ("gmf_combine",)

    table_rows: tuple[int, int, int, int]
    mlp: tuple[int, ...]
    final_width: int
    gmf_combine: Literal["sum", "product"] = "sum"

    def __post_init__(self) -> None:
        _check_choice("gmf_combine", self.gmf_combine, ("sum", "product"))

    def output_width(self) -> int:
        return self.final_width


@dataclass(frozen=True)
class WideAndDeepConfig(_DenseAndTables):
    """WnD: raw dense features concatenated with sum-pooled tables into one deep MLP."""

    top_mlp: tuple[int, ...]

    def output_width(self) -> int:
        return self.top_mlp[-1]


@dataclass(frozen=True)
class MultiTaskWideAndDeepConfig(_DenseAndTables):
    """MT-WnD: WnD's input, a shared MLP, then one tower and one score per task."""

    OPTIONS: ClassVar[tuple[str, ...]] = ("tasks",)

    shared_mlp: tuple[int, ...]
    task_mlp: tuple[int, ...]
    tasks: int = 3

    def __post_init__(self) -> None:
        _check_positive_int("tasks", self.tasks)

    def output_width(self) -> int:
        return self.tasks


@dataclass(frozen=True)
class _BehaviourModel(_ZooConfig):
    """DIN and DIEN: a profile table, one table per behaviour, the candidate ad, the context."""

    profile_rows: int
    behaviour_rows: int
    ad_rows: int
    context_rows: int
    top_mlp: tuple[int, ...]

    def behaviours(self) -> int:
        raise NotImplementedError

    def paper_table_rows(self) -> tuple[int, ...]:
        behaviour = (self.behaviour_rows,) * self.behaviours()
        return (self.profile_rows, *behaviour, self.ad_rows, self.context_rows)

    def output_width(self) -> int:
        return self.top_mlp[-1]


@dataclass(frozen=True)
class DinConfig(_BehaviourModel):
    """DIN: profile, behaviour tables with one attention unit each, candidate ad, context."""

    OPTIONS: ClassVar[tuple[str, ...]] = ("behaviour_tables", "last_activation")

    attention_hidden: int
    behaviour_tables: int = 250
    last_activation: ScoreActivation = "softmax"

    def __post_init__(self) -> None:
        _check_positive_int("behaviour_tables", self.behaviour_tables)
        _check_choice("last_activation", self.last_activation, LAST_ACTIVATIONS)

    def behaviours(self) -> int:
        return self.behaviour_tables


@dataclass(frozen=True)
class DienConfig(_BehaviourModel):
    """DIEN: behaviour sequence through two recurrent layers, then profile, ad, context."""

    OPTIONS: ClassVar[tuple[str, ...]] = ("last_activation", "recurrent")

    sequence_length: int
    hidden_size: int
    recurrent: Literal["gru", "rnn"] = "gru"
    last_activation: ScoreActivation = "softmax"

    def __post_init__(self) -> None:
        _check_choice("recurrent", self.recurrent, ("gru", "rnn"))
        _check_choice("last_activation", self.last_activation, LAST_ACTIVATIONS)

    def behaviours(self) -> int:
        return self.sequence_length


ZooConfig = (
    DlrmConfig | NcfConfig | WideAndDeepConfig | MultiTaskWideAndDeepConfig | DinConfig | DienConfig
)

RMC1 = DlrmConfig(
    name="rmc1",
    embedding_dim=32,
    lookups_per_table=80,
    dense_input=128,
    bottom_mlp=(64, 32),
    table_rows=(4_000_000,) * 8,
    top_mlp=(256, 64, 1),
)
RMC2 = DlrmConfig(
    name="rmc2",
    embedding_dim=64,
    lookups_per_table=120,
    dense_input=256,
    bottom_mlp=(128, 64),
    table_rows=(500_000,) * 32,
    top_mlp=(128, 64, 1),
)
RMC3 = DlrmConfig(
    name="rmc3",
    embedding_dim=32,
    lookups_per_table=20,
    dense_input=2560,
    bottom_mlp=(1024, 256, 32),
    table_rows=(2_000_000,) * 10,
    top_mlp=(512, 256, 1),
)
NCF = NcfConfig(
    name="ncf",
    embedding_dim=64,
    lookups_per_table=1,
    table_rows=(140_000, 140_000, 28_000, 28_000),
    mlp=(256, 256, 128, 64),
    final_width=64,
)
WND = WideAndDeepConfig(
    name="wnd",
    embedding_dim=32,
    lookups_per_table=1,
    dense_input=512,
    table_rows=(1_000_000,) * 27,
    top_mlp=(1024, 512, 256, 1),
)
MTWND = MultiTaskWideAndDeepConfig(
    name="mtwnd",
    embedding_dim=32,
    lookups_per_table=1,
    dense_input=512,
    table_rows=(500_000,) * 41 + (5_000_000,) * 2,
    shared_mlp=(1024, 512),
    task_mlp=(256, 128),
)
DIN = DinConfig(
    name="din",
    embedding_dim=32,
    lookups_per_table=3,
    profile_rows=1_000_000,
    behaviour_rows=100_000,
    ad_rows=10_000_000,
    context_rows=10_000_000,
    attention_hidden=1,
    top_mlp=(200, 80, 2),
)
DIEN = DienConfig(
    name="dien",
    embedding_dim=32,
    lookups_per_table=1,
    profile_rows=500_000,
    behaviour_rows=500_000,
    sequence_length=40,
    ad_rows=5_000_000,
    context_rows=5_000_000,
    hidden_size=64,
    top_mlp=(200, 80, 2),
)

PAPER_CONFIGS: dict[str, ZooConfig] = {
    config.name: config for config in (RMC1, RMC2, RMC3, NCF, WND, MTWND, DIN, DIEN)
}
"""The zoo's models by name, with default options, in the paper's order."""
