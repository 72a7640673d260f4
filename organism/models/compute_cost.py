"""What an attribution run cost: wall time and an estimate of its floating-point operations.

Why: the paper's case for activation attribution over gradient attribution is cost (about $30 against $320 on OLMo 2
7B); a ranking records `cost: {wall_s, flops, ...}` in its parameters so that claim can be checked on any run.

FLOPs are estimated analytically from the matrix multiplications a transformer runs per token:
- forward: 2 x (weights of the nn.Linear modules the pass goes through) x tokens (the output head counts only where
  the pass computes logits; an embedding lookup is not a matmul);
- backward with the base weights frozen (LoRA): 1 x forward more (input gradients only: the frozen weights get no
  weight gradient, and the LoRA matrices add well under 1%); with every weight trained it would be 2 x forward more.
Attention-score products, norms and padding are left out, so the figures are lower bounds for both methods alike.
`count_flops` runs a callable under torch.utils.flop_counter.FlopCounterMode instead (exact for the ops it knows,
but slower: use it on a sample, not in a timed run).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Forward + backward of a frozen-base (LoRA) model, in units of one forward.
FROZEN_FWD_BWD = 2.0
#: Forward + backward when every weight gets a gradient.
FULL_FWD_BWD = 3.0
ANALYTIC = "analytic: 2 x linear weights x real tokens per forward; backward of a frozen base = 1 forward more"


@dataclass
class Cost:
    """Wall time and FLOPs of one attribution run, with the parts that make them up (for the record)."""

    wall_s: float = 0.0
    flops: float = 0.0
    flops_method: str = ANALYTIC
    parts: dict[str, float] = field(default_factory=dict)

    def add(self, part: str, flops: float) -> None:
        """Count `flops` under `part` (parts add up to `flops`)."""
        self.parts[part] = self.parts.get(part, 0.0) + float(flops)
        self.flops += float(flops)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["wall_s"] = round(self.wall_s, 3)
        return out


class Stopwatch:
    """`with Stopwatch() as sw: ...` then `sw.elapsed` (perf_counter seconds); also usable across several blocks."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self._start: float | None = None

    def __enter__(self) -> "Stopwatch":
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._start is not None
        self.elapsed += time.perf_counter() - self._start
        self._start = None


def linear_weights(modules: Iterable["torch.nn.Module"]) -> int:
    """Weights of every nn.Linear under `modules`, counted once per module (a tied output head counts: it is a
    matmul even though its weight is the embedding's). LoRA's own small Linear layers count too."""
    import torch

    seen: set[int] = set()
    total = 0
    for root in modules:
        for mod in root.modules():
            if isinstance(mod, torch.nn.Linear) and id(mod) not in seen:
                seen.add(id(mod))
                total += mod.weight.numel()
    return total


def decoder_layers(model: Any) -> Any:
    """The ModuleList of decoder blocks (`...model.layers`), whatever wrapper (PEFT, CausalLM) is around it."""
    import torch

    best = None
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and name.split(".")[-1] == "layers":
            if best is None or len(mod) > len(best):
                best = mod
    if best is None:
        from benchcore.errors import InputError

        raise InputError(type(model).__name__, "model", "no `layers` ModuleList found to count FLOPs over")
    return best


def forward_flops(weights: int, tokens: int) -> float:
    """2 multiply-adds per weight per token."""
    return 2.0 * float(weights) * float(tokens)


def count_flops(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(fn(), FLOPs torch's FlopCounterMode counted while it ran, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        out = fn()
    return out, float(counter.get_total_flops())
