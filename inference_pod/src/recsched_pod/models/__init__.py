"""The DeepRecInfra model zoo: eight recommendation models in PyTorch.

DLRM-RMC1/2/3, NCF, WnD, MT-WnD, DIN and DIEN with the architecture numbers of the released
DeepRecSys configs (`research/deeprecsys-facts.md` section 1.1), embedding tables scaled by `scale`
(1.0 = the paper's multi-GB tables, at least 1,000 rows a table). Where the released code lost the
paper's intent (DIN's 250 behaviour tables, MT-WnD's task heads, DIEN's GRUs) the default builds the
intent and an option builds the released variant; each model's docstring says which and why.

    spec = model_spec("wnd", scale=0.01)          # cheap: shapes and rows only
    model = build_model("wnd", scale=0.01, seed=0)
    dense, sparse = random_query(spec, items=64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        scores = model(dense, sparse)              # FP32 [64, spec.output_width]
"""

from recsched_pod.models.base import RecommendationModel
from recsched_pod.models.configs import MIN_TABLE_ROWS
from recsched_pod.models.errors import InvalidModelOptionError, ModelZooError, UnknownModelError
from recsched_pod.models.queries import random_query
from recsched_pod.models.registry import (
    MODEL_NAMES,
    build_model,
    model_config,
    model_options,
    model_spec,
)
from recsched_pod.models.spec import ModelInputSpec

__all__ = [
    "MIN_TABLE_ROWS",
    "MODEL_NAMES",
    "InvalidModelOptionError",
    "ModelInputSpec",
    "ModelZooError",
    "RecommendationModel",
    "UnknownModelError",
    "build_model",
    "model_config",
    "model_options",
    "model_spec",
    "random_query",
]
