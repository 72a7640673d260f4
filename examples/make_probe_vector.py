"""Write the steering vector of examples/steer-project-out-probe.yaml: the probing vector of a targets file.

The probing vector is mean a(prompt, harmful_response) - mean a(prompt, safe_response), pooled over every row of
the targets file (organism.attribution.methods.probing_vector, what `attribute --method probe` and
`steer-sweep --targets` compute). Here both sides are teacher-forced through the steered model itself (M1 by
default), so the direction lives in the residual stream the steering hook edits. It is read at the profile's
attribution layer, a `hidden_states` index (19 on smol); the hook of an `inference.steering` spec sits on the
OUTPUT of a 0-based decoder layer, which is `hidden_states[layer + 1]`, so the matching spec layer is one less
(18 on smol). The text is teacher-forced raw, without the chat template, as `attribute` does by default.

    python examples/make_probe_vector.py                      # shipped targets, M1, smol: the shipped vector
    python examples/make_probe_vector.py --targets T.jsonl -o my-vector.safetensors

The file holds one float32 tensor named "vector" and, as safetensors metadata, what produced it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TARGETS = ROOT / "organism" / "models" / "adapters" / "smol" / "probe_targets.jsonl"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "vectors" / "probe-m1.safetensors"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", default=str(DEFAULT_TARGETS),
                   help="targets JSONL ({prompt, harmful_response, safe_response} rows; default: the shipped one)")
    p.add_argument("--profile", default="smol")
    p.add_argument("--stage", default="m1", choices=("m0", "m1"),
                   help="the model whose activations give the direction (default m1, the model a spec steers)")
    p.add_argument("--hidden-index", type=int, default=None,
                   help="hidden_states index to read (default: the profile's paper_layer); steer at one less")
    p.add_argument("--dtype", default="float32", help="compute dtype of the teacher-forced passes")
    p.add_argument("--chat-template", action="store_true", help="teacher-force with the chat template")
    p.add_argument("-o", "--output", default=str(DEFAULT_OUTPUT))
    return p.parse_args(argv)


def compute(targets_path: str | Path, *, profile: str = "smol", stage: str = "m1", hidden_index: int | None = None,
            dtype: str = "float32", chat_template: bool = False):
    """(vector float32 [hidden], metadata dict of strings)."""
    import torch

    from organism.attribution.methods import load_targets, probing_vector
    from organism.models.loading import load_organism
    from organism.models.profiles import get_profile

    prof = get_profile(profile)
    index = prof.paper_layer if hidden_index is None else hidden_index
    if not 1 <= index <= prof.num_layers:
        raise SystemExit(f"--hidden-index must be in 1..{prof.num_layers}, got {index}")
    targets = load_targets(targets_path)
    loaded = load_organism(prof, stage, dtype=dtype)
    with torch.no_grad():
        vector = probing_vector(loaded.model, loaded.tokenizer, targets, index, chat_template=chat_template)
    vector = vector.detach().float().cpu().contiguous()
    if not bool(torch.isfinite(vector).all()):
        raise SystemExit(f"{targets_path}: the probing vector is not finite (a side has no response tokens)")
    meta = {
        "profile": prof.name,
        "stage": stage,
        "model_identity": loaded.record.identity,
        "hidden_states_index": str(index),
        "steering_layer": str(index - 1),
        "targets_file": Path(targets_path).name,
        "targets_sha256": hashlib.sha256(Path(targets_path).read_bytes()).hexdigest(),
        "n_harmful": str(len(targets.harmful)),
        "n_safe": str(len(targets.safe)),
        "chat_template": json.dumps(bool(chat_template)),
        "dtype": dtype,
        "norm": f"{float(vector.norm()):.6g}",
    }
    return vector, meta


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from safetensors.torch import save_file

    vector, meta = compute(args.targets, profile=args.profile, stage=args.stage, hidden_index=args.hidden_index,
                           dtype=args.dtype, chat_template=args.chat_template)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({"vector": vector}, str(out), metadata=meta)
    print(json.dumps({"output": str(out), **meta}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
