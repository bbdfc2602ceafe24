"""An MLServer runtime serving a RecSched model exported as TorchScript (issue 13, section 3).

MLServer loads this class by its Python path (`runtime.TorchScriptRecModel`, with this folder on
PYTHONPATH) inside its own virtualenv (bench/.scratch/mlserver-venv), which has torch and mlserver
but not recsched_pod: the model arrives as the very trace the pod serves, saved with
`torch.jit.save` by bench/peers.py from the project's environment (same code, weights, scale and
seed), so this file only maps OIP tensors to that module and back.

Decoding and encoding use MLServer's own `NumpyCodec`, as a user writing a runtime would. The
model's metadata (`GET /v2/models/{m}`) carries the same `parameters` the pod publishes
(`table_rows`, `max_query_items`), because recsched-loadtest sizes its queries from them; MLServer
itself only copies `content_type` there, hence the `metadata` override.

Model settings `parameters.uri`: the TorchScript file. `parameters.extra`: `torch_threads`
(intra-op threads per process; RecSched's workers use 1 each) and `metadata_parameters`.
Not type-checked by the project's mypy (mlserver is not a project dependency).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse, MetadataModelResponse, Parameters

DENSE_INPUT = "dense_features"
SPARSE_INPUT = "sparse_indices"
SCORES_OUTPUT = "scores"


class TorchScriptRecModel(MLModel):
    """Scores OIP v2 queries (`dense_features` FP32 [N, D], `sparse_indices` INT64 [N, T, L])."""

    async def load(self) -> bool:
        parameters = self.settings.parameters
        if parameters is None or not parameters.uri:
            raise InferenceError("model-settings.json needs parameters.uri (the TorchScript file)")
        extra: dict[str, Any] = dict(parameters.extra or {})
        torch.set_num_threads(int(extra.get("torch_threads", 1)))
        self._module = torch.jit.load(parameters.uri, map_location="cpu").eval()
        self._has_dense = bool(extra.get("has_dense", True))
        self._metadata_parameters: dict[str, Any] = dict(extra.get("metadata_parameters", {}))
        return True

    async def metadata(self) -> MetadataModelResponse:
        metadata = await super().metadata()
        metadata.parameters = Parameters(**self._metadata_parameters)
        return metadata

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inputs = {tensor.name: tensor for tensor in payload.inputs}
        if SPARSE_INPUT not in inputs or (self._has_dense and DENSE_INPUT not in inputs):
            raise InferenceError(f"inputs must be {DENSE_INPUT} and {SPARSE_INPUT}")
        sparse = torch.from_numpy(NumpyCodec.decode_input(inputs[SPARSE_INPUT]))
        with torch.inference_mode():
            if self._has_dense:
                dense = torch.from_numpy(NumpyCodec.decode_input(inputs[DENSE_INPUT]))
                scores = self._module(dense, sparse)
            else:
                scores = self._module(sparse)
        output = NumpyCodec.encode_output(SCORES_OUTPUT, np.ascontiguousarray(scores.numpy()))
        return InferenceResponse(model_name=self.name, id=payload.id, outputs=[output])
