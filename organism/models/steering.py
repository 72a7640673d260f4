"""Activation steering: add a vector to (or project it out of) the residual stream at one decoder layer.

The hook sits on the OUTPUT of decoder layer `layer` (0-based), which is the residual position HF reports as
`hidden_states[layer + 1]`; the paper's check added 2.0 x the probing vector at layer 19 of OLMo 2 7B.

Position rule for `positions="generated"`: steer exactly the positions whose outputs choose generated tokens,
i.e. the LAST prompt position of the first (prefill) call and every position of the later (one-token, KV-cached)
calls. The prompt's own representations stay untouched, and every generated token, the first included, is
steered. The prompt length is taken from the first call; a later call with more than one position is read as a
new prefill (a new `generate`), so one context may span several generations. This assumes KV-cached decoding (the
default of our backends and of HF generate). With left padding the last prompt position is the last real token of
every row, so batching does not change which positions are steered.
`positions="all"` steers every position of every call.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchcore.errors import InputError

MODES = ("add", "project_out")
POSITIONS = ("generated", "all")

# attribute paths where common architectures keep their decoder layers (Llama, Olmo 2, Mistral, Qwen: model.layers)
_LAYER_PATHS = (
    "model.layers",
    "model.decoder.layers",
    "transformer.h",
    "gpt_neox.layers",
    "model.language_model.layers",
    "layers",
)


def decoder_layers(model: Any):
    """The model's list of decoder layers, found by the usual attribute paths (PEFT wrappers unwrapped first),
    else by the one ModuleList as long as config.num_hidden_layers."""
    import torch.nn as nn

    inner = model
    for _ in range(3):  # PeftModel -> LoraModel -> the transformers model
        base = getattr(inner, "base_model", None)
        if base is None or base is inner or not isinstance(base, nn.Module):
            break
        if not any(_get_path(inner, p) is not None for p in _LAYER_PATHS):
            inner = base
        else:
            break
    for path in _LAYER_PATHS:
        found = _get_path(inner, path)
        if isinstance(found, nn.ModuleList) and len(found) > 0:
            return found
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if isinstance(n, int):
        candidates = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) == n]
        if len(candidates) == 1:
            return candidates[0]
    raise InputError(type(model).__name__, "layers", "cannot find the decoder layers of this model "
                                                     "(looked for model.layers and similar)")


def _get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


class _SteerHook:
    """Forward hook state: the vector in the hidden dtype/device, and the prompt length of the current pass."""

    def __init__(self, vector: Any, scale: float, mode: str, positions: str) -> None:
        import torch

        v = vector.detach().float().reshape(-1)
        if mode == "project_out":
            norm = torch.linalg.vector_norm(v)
            if float(norm) == 0.0:
                raise InputError("steering", "vector", "a zero vector has no direction to project out")
            v = v / norm
        self.vector = v
        self.scale = float(scale)
        self.mode = mode
        self.positions = positions
        self.prompt_len: int | None = None
        self.seen = 0
        self._cast: dict[tuple, Any] = {}

    def _vec(self, like):
        key = (like.dtype, like.device)
        if key not in self._cast:
            self._cast[key] = self.vector.to(device=like.device, dtype=like.dtype)
        return self._cast[key]

    def _edit(self, hidden):
        if hidden.shape[-1] != self.vector.numel():
            raise InputError("steering", "vector", f"has {self.vector.numel()} dimensions, the layer's hidden size "
                                                   f"is {hidden.shape[-1]}")
        seq = hidden.shape[-2] if hidden.dim() >= 2 else 1
        if self.positions == "all":
            start = 0
        else:
            if self.prompt_len is None or seq > 1:  # a prefill: a new sequence starts here
                self.prompt_len, self.seen = seq, 0
            # absolute position of this call's first token is self.seen; steer positions >= prompt_len - 1
            start = max(0, self.prompt_len - 1 - self.seen)
            self.seen += seq
            if start >= seq:
                return hidden
        if self.mode == "add":
            delta = self.scale * self._vec(hidden)
            if start == 0:
                return hidden + delta
            out = hidden.clone()
            out[..., start:, :] += delta
            return out
        part = hidden[..., start:, :] if start else hidden
        u = self._vec(part.float())  # float32 unit vector and dot product: bf16 sums lose the component
        coeff = (part.float() @ u).unsqueeze(-1)
        removed = (self.scale * coeff * u).to(hidden.dtype)
        if start == 0:
            return hidden - removed
        out = hidden.clone()
        out[..., start:, :] -= removed
        return out

    def __call__(self, module, args, output):
        import torch

        if isinstance(output, torch.Tensor):
            return self._edit(output)
        if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
            return (self._edit(output[0]), *output[1:])
        if isinstance(output, list) and output and isinstance(output[0], torch.Tensor):
            return [self._edit(output[0]), *output[1:]]
        hidden = getattr(output, "last_hidden_state", None)
        if hidden is not None:  # a ModelOutput-style return
            output.last_hidden_state = self._edit(hidden)
            return output
        raise InputError(type(module).__name__, "output", f"cannot steer a layer that returns {type(output)!r}")


@contextmanager
def steer(model: Any, vector: Any, layer: int, *, scale: float = 1.0, mode: str = "add",
          positions: str = "generated") -> Iterator[None]:
    """Within the block, decoder layer `layer`'s output hidden states h become h + scale*v (mode add) or
    h - scale*(h.u)u with u = v/|v| (mode project_out) at the chosen positions. The hook is removed on exit,
    errors included."""
    import torch

    if mode not in MODES:
        raise InputError("steering", "mode", f"must be one of {', '.join(MODES)}; got {mode!r}")
    if positions not in POSITIONS:
        raise InputError("steering", "positions", f"must be one of {', '.join(POSITIONS)}; got {positions!r}")
    if not isinstance(vector, torch.Tensor):
        vector = torch.as_tensor(vector)
    if vector.dim() != 1:
        raise InputError("steering", "vector", f"must be 1-D, got shape {tuple(vector.shape)}")
    layers = decoder_layers(model)
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < len(layers):
        raise InputError("steering", "layer", f"{layer!r} is out of range: the model has {len(layers)} decoder "
                                              f"layers (0..{len(layers) - 1})")
    hidden_size = getattr(getattr(model, "config", None), "hidden_size", None)
    if isinstance(hidden_size, int) and vector.numel() != hidden_size:
        raise InputError("steering", "vector", f"has {vector.numel()} dimensions, the model's hidden size is "
                                               f"{hidden_size}")
    handle = layers[layer].register_forward_hook(_SteerHook(vector, scale, mode, positions))
    try:
        yield
    finally:
        handle.remove()


def load_vector(path: str | os.PathLike, source: str | None = None, field_name: str = "vector"):
    """The steering vector as a 1-D float tensor: `.safetensors` with one tensor named "vector", or a `.pt`
    tensor loaded with weights_only (never unpickle arbitrary code)."""
    import torch

    p = Path(path)
    src = source or str(p)
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(p), framework="pt") as fh:
                keys = list(fh.keys())
                if keys != ["vector"]:
                    raise InputError(src, field_name, f"{p.name} must hold exactly one tensor named 'vector', "
                                                      f"found {keys}")
                tensor = fh.get_tensor("vector")
        elif p.suffix.lower() in (".pt", ".pth"):
            tensor = torch.load(str(p), map_location="cpu", weights_only=True)
            if isinstance(tensor, dict) and list(tensor) == ["vector"]:
                tensor = tensor["vector"]
        else:
            raise InputError(src, field_name, f"{p.name}: use a .safetensors (or .pt) file")
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt file is the user's input, whatever the loader raises
        raise InputError(src, field_name, f"cannot read {p.name}: {type(exc).__name__}: "
                                          f"{' '.join(str(exc).split())}") from exc
    if not isinstance(tensor, torch.Tensor):
        raise InputError(src, field_name, f"{p.name} holds a {type(tensor).__name__}, not a tensor")
    if tensor.dim() != 1 or tensor.numel() == 0:
        raise InputError(src, field_name, f"must be one 1-D tensor, got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise InputError(src, field_name, f"must be floating point, got {tensor.dtype}")
    if not bool(torch.isfinite(tensor).all()):
        raise InputError(src, field_name, "contains NaN or infinite values")
    return tensor
