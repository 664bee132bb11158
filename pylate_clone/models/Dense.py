"""Token-level projection layer of a ColBERT model."""

from __future__ import annotations

import importlib
import json
import logging
import os
from typing import Any

import torch
from safetensors.torch import load_file as load_safetensors
from sentence_transformers.base.modules.dense import Dense as STDense
from torch import nn

from ..utils.validation import check_int

logger = logging.getLogger(__name__)

# The type string PyLate writes in modules.json; we write it too so PyLate and
# sentence-transformers' MultiVectorEncoder load our checkpoints.
PYLATE_DENSE_TYPE = "pylate.models.Dense.Dense"


def _activation_from_name(name: str) -> nn.Module:
    """Instantiate a torch activation from its dotted class name, without running foreign code."""
    if not name.startswith("torch."):
        raise ValueError(
            f"activation_function {name!r} is not a torch class; refusing to import it."
        )
    module_name, _, class_name = name.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(
            f"activation_function {name!r} is not a torch.nn.Module class."
        )
    return cls()


def _activation_name(activation: nn.Module) -> str:
    cls = type(activation)
    return f"{cls.__module__}.{cls.__qualname__}"


class Dense(STDense):
    """Linear projection (plus activation) applied to every token embedding.

    It reads and writes ``features["token_embeddings"]`` of shape ``(B, L, in)`` →
    ``(B, L, out)`` (any leading shape works).

    Parameters
    ----------
    in_features
        Input dimension.
    out_features
        Output dimension.
    bias
        Whether the linear layer has a bias.
    activation_function
        Module applied after the linear layer (default identity).
    init_weight
        Optional initial weight ``(out_features, in_features)``.
    init_bias
        Optional initial bias ``(out_features,)``.
    use_residual
        Add the input back: directly when dimensions match, else through an extra
        bias-free ``nn.Linear(in_features, out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation_function: nn.Module | None = None,
        init_weight: torch.Tensor | None = None,
        init_bias: torch.Tensor | None = None,
        use_residual: bool = False,
    ) -> None:
        check_int("in_features", in_features)
        check_int("out_features", out_features)
        super().__init__(
            in_features=in_features,
            out_features=out_features,
            bias=bias,
            activation_function=activation_function
            if activation_function is not None
            else nn.Identity(),
            init_weight=init_weight,
            init_bias=init_bias,
            module_input_name="token_embeddings",
            use_residual=use_residual,
        )

    def get_config_dict(self) -> dict[str, Any]:
        """The PyLate ``config.json`` of this layer."""
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias,
            "activation_function": _activation_name(self.activation_function),
            "use_residual": self.use_residual,
        }

    def __repr__(self) -> str:
        return f"Dense({self.get_config_dict()})"

    def save(
        self,
        output_path: str,
        *args: Any,
        safe_serialization: bool = True,
        **kwargs: Any,
    ) -> None:
        """Write ``config.json`` and the weights (``model.safetensors`` by default)."""
        os.makedirs(output_path, exist_ok=True)
        with open(os.path.join(output_path, "config.json"), "w", encoding="utf-8") as f:
            json.dump(self.get_config_dict(), f, indent=4)
        self.save_torch_weights(output_path, safe_serialization=safe_serialization)

    @classmethod
    def load(cls, input_path: str) -> Dense:
        """Load a Dense layer saved by PyLate, pylate_clone or sentence-transformers.

        Parameters
        ----------
        input_path
            Folder holding ``config.json`` and ``model.safetensors`` (or
            ``pytorch_model.bin``, read with ``weights_only=True``).
        """
        config_path = os.path.join(input_path, "config.json")
        try:
            with open(config_path, encoding="utf-8") as f:
                config = json.load(f)
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(
                f"Cannot read Dense config {config_path}: {error}"
            ) from error
        activation = config.get(
            "activation_function", "torch.nn.modules.linear.Identity"
        )
        model = cls(
            in_features=config["in_features"],
            out_features=config["out_features"],
            bias=config.get("bias", True),
            activation_function=_activation_from_name(activation),
            use_residual=config.get("use_residual", False),
        )
        safetensors_path = os.path.join(input_path, "model.safetensors")
        if os.path.exists(safetensors_path):
            state = load_safetensors(safetensors_path, device="cpu")
        else:
            state = torch.load(
                os.path.join(input_path, "pytorch_model.bin"),
                map_location="cpu",
                weights_only=True,
            )
        model.load_state_dict(state)
        return model

    @staticmethod
    def from_sentence_transformers(dense: STDense) -> Dense:
        """Convert a sentence-transformers ``Dense`` (activation and weights kept)."""
        activation = getattr(dense, "activation_function", None) or nn.Identity()
        converted = Dense(
            in_features=dense.in_features,
            out_features=dense.out_features,
            bias=bool(dense.bias),
            activation_function=activation,
            use_residual=bool(getattr(dense, "use_residual", False)),
        )
        converted.load_state_dict(dense.state_dict())
        return converted.to(dense.linear.weight.device, dense.linear.weight.dtype)

    @staticmethod
    def from_stanford_weights(
        model_name_or_path: str,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool | None = None,
        token: str | bool | None = None,
        use_auth_token: str | bool | None = None,
    ) -> Dense:
        """Build the projection of a Stanford-NLP ColBERT checkpoint from its ``linear.weight``.

        Returns
        -------
        Dense
            ``Dense(in, out, bias=False)`` holding the ``(out, in)`` weight.
        """
        from transformers.utils import cached_file

        token = token if token is not None else use_auth_token
        if os.path.isdir(model_name_or_path):
            path = os.path.join(model_name_or_path, "model.safetensors")
            if not os.path.exists(path):
                path = os.path.join(model_name_or_path, "pytorch_model.bin")
        else:
            hub = dict(
                cache_dir=cache_folder,
                revision=revision,
                local_files_only=bool(local_files_only),
                token=token,
            )
            try:
                path = cached_file(model_name_or_path, "model.safetensors", **hub)
            except OSError:
                path = cached_file(model_name_or_path, "pytorch_model.bin", **hub)
        if path.endswith(".safetensors"):
            weights = load_safetensors(path, device="cpu")
        else:
            weights = torch.load(path, map_location="cpu", weights_only=True)
        if "linear.weight" not in weights:
            raise ValueError(
                f"{path} has no 'linear.weight' tensor: not a Stanford ColBERT."
            )
        weight = weights["linear.weight"].float()
        out_features, in_features = weight.shape
        dense = Dense(in_features, out_features, bias=False)
        dense.linear.weight.data.copy_(weight)
        return dense
