"""Data mitigations graded by counterfactual retraining: the profile's mix, edited by the spec, DPO from M0 again.

A data mitigation says which preference pairs to remove or flip; its effect is only visible once M1 is retrained
without them. `retrain_data_mitigation` does that with the profile's fixed recipe and caches the result under
`cache_dir()/retrained/<key>`, key = sha256 of (spec hash, mitigated data hash, recipe training fields, M0
identity), because a retrain costs minutes (smol, CPU) to GPU-hours (OLMo 2): grading the same spec again, or
re-running an evaluation with other generation settings, must reuse the adapter. A retrain is checkpointed inside
its cache folder and resumes after a kill; the folder counts as done only once `done.json` is written.

Recipes: smol retrains exactly as its M1 was trained (the installed manifest's `recipe.m1` training fields); the
OLMo 2 profiles use the paper's open-instruct DPO recipe (`Profile.recipe`, full fine-tuning) and need a GPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchcore.errors import InputError

RETRAIN_VERSION = 1
# Families whose M0 is too large to retrain without a CUDA device.
GPU_FAMILIES = ("olmo2",)
# Optimizer steps between resumable checkpoints (run-only: not part of the key). LoRA states are small; a full
# OLMo 2 state with optimizer is ~100 GB, so it is saved far less often.
CHECKPOINT_EVERY = {"smol": 10, "olmo2": 200}
STATUSES = ("trained", "resumed", "cached")


@dataclass(frozen=True)
class RetrainRecipe:
    """The DPO configuration a profile's data mitigations are retrained with, and where it came from."""

    config: Any  # organism.training.dpo.DPOConfig
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, **self.config.training_fields()}


@dataclass
class RetrainOutcome:
    """What `retrain_data_mitigation` produced: the weights to load on top of M0 and the record for results.json."""

    key: str
    status: str  # trained | resumed | cached
    folder: Path
    kind: str  # lora | full
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def weights_dir(self) -> Path:
        return self.folder / ("adapter" if self.kind == "lora" else "model")

    def load_kwargs(self) -> dict[str, Any]:
        """`load_organism(profile, "m0", **these)` loads the retrained model."""
        return {"adapter": self.weights_dir} if self.kind == "lora" else {"model_path": self.weights_dir}


def _profile(profile: Any) -> Any:
    from organism.models.profiles import Profile, get_profile

    return profile if isinstance(profile, Profile) else get_profile(str(profile))


def require_gpu(profile: Any) -> None:
    """Retraining an OLMo 2 checkpoint on CPU would take weeks: refuse at once, before anything is loaded."""
    prof = _profile(profile)
    if prof.family not in GPU_FAMILIES:
        return
    import torch

    if not torch.cuda.is_available():
        raise InputError(f"profile {prof.name!r}", "device",
                         "a data mitigation retrains DPO from M0 with the paper's recipe, which needs CUDA GPUs and "
                         "none is visible here; see docs/training.md (multi-GPU `accelerate launch` recipe)")


def retraining_recipe(profile: Any) -> RetrainRecipe:
    """The profile's retraining recipe: smol from the installed build manifest, OLMo 2 from `Profile.recipe`."""
    from organism.training.dpo import DPOConfig

    prof = _profile(profile)
    every = CHECKPOINT_EVERY.get(prof.family, 0)
    if prof.family == "smol":
        from organism.models import profiles

        path = profiles.smol_organism_dir() / "manifest.json"  # read at call time: tests point it elsewhere
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            m1 = manifest["recipe"]["m1"]
        except FileNotFoundError:
            raise InputError(f"profile {prof.name!r}", "recipe",
                             f"{path} is not installed; build and install the organism with "
                             f"`organism-bench organism build --profile {prof.name} --install`") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(path, "recipe.m1", f"cannot read the M1 recipe: {type(exc).__name__}: {exc}") from None
        names = {f.name for f in dataclasses.fields(DPOConfig)}
        values = {k: v for k, v in m1.items() if k in names}
        config = DPOConfig(**{**values, "checkpoint_every": every, "stop_after_steps": None})
        return RetrainRecipe(config.validate(f"{path}: recipe.m1"), f"{path.name}: recipe.m1 (the build's M1)")
    config = DPOConfig.from_recipe(prof.recipe, per_device_batch=1, world_size=1, gradient_checkpointing=True,
                                   checkpoint_every=every)
    return RetrainRecipe(config, prof.recipe.source or f"profile {prof.name} recipe")


def retrain_key(spec_hash: str, data_hash: str, config: Any, m0_identity: str) -> str:
    """sha256 of everything that decides the retrained weights (run-only fields such as checkpointing excluded)."""
    payload = json.dumps({"version": RETRAIN_VERSION, "spec_hash": spec_hash, "data_hash": data_hash,
                          "recipe": config.training_fields(), "m0": m0_identity}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def retrain_dir(key: str) -> Path:
    from benchcore.paths import cache_dir

    return cache_dir() / "retrained" / key


def _read_done(folder: Path, kind: str) -> dict[str, Any] | None:
    """The finished record, or None when the folder is absent, unfinished or its adapter no longer matches."""
    try:
        done = json.loads((folder / "done.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(done, dict) or done.get("kind") != kind:
        return None
    if kind == "lora":
        from organism.models.loading import adapter_sha256

        adapter = folder / "adapter"
        if not (adapter / "adapter_model.safetensors").is_file() or adapter_sha256(adapter) != done.get("adapter_sha256"):
            return None
    elif not (folder / "model" / "config.json").is_file():
        return None
    return done


def _contamination(before: Any, record: Any) -> dict[str, Any] | None:
    """How many ground-truth contaminated pairs the edit touched (reporting only; training never sees the label)."""
    if "contaminated" not in before.column_names:
        return None
    import pyarrow.compute as pc

    labels = pc.fill_null(before.column_array("contaminated").cast("bool"), False).to_pylist()
    contaminated = {i for i, flag in zip(before.ids, labels) if flag}
    hit = sum(1 for i in record.affected_ids if i in contaminated)
    flipped = record.kind == "flip" or (record.kind == "random" and record.parameters.get("action") == "flip")
    return {"column": "contaminated", "before": len(contaminated), "flipped" if flipped else "removed": hit,
            "remaining": len(contaminated) - hit}


def retrain_data_mitigation(profile: Any, data_spec: Mapping[str, Any], *, spec_hash: str, source: str = "spec",
                            base_dir: str | Path | None = None, progress: bool = False,
                            on_step: Callable[[int, int], None] | None = None) -> RetrainOutcome:
    """Apply `data_spec` (the spec's `data` block: action, ranking, top_n, ...) to the profile's preference mix,
    retrain DPO from M0 on the result (or reuse the cached retrain) and say what was done.

    `source` names the spec in errors; relative ranking paths resolve against `base_dir`. `on_step(step, total)`
    follows the training (organism.training.dpo.train_dpo); a cached retrain calls it never.
    """
    from organism.training import dpo
    from organism.data.interventions import apply_intervention
    from organism.models.loading import adapter_sha256, load_organism
    from organism.data.preference import load_profile_preferences

    start = time.perf_counter()
    prof = _profile(profile)
    require_gpu(prof)
    before = load_profile_preferences(prof)
    mitigated, intervention = apply_intervention(before, data_spec, source=source, base_dir=base_dir)
    recipe = retraining_recipe(prof)
    config = recipe.config
    kind = "lora" if config.lora is not None else "full"
    loaded = load_organism(prof, "m0", dtype=config.dtype, device="cpu")
    identity = loaded.record.identity
    key = retrain_key(spec_hash, mitigated.data_hash, config, identity)
    folder = retrain_dir(key)
    done = _read_done(folder, kind)
    status = "cached"
    if done is None:
        pairs = list(mitigated.training_view())  # drops every column but id, prompt and the two completions
        result = dpo.train_dpo(loaded.model, loaded.tokenizer, identity, pairs, config, folder,
                               ref_cache_dir=dpo.default_ref_cache_dir(), progress=progress, resume=True,
                               on_step=on_step)
        if not result.completed:
            raise RuntimeError(f"retraining stopped at step {result.steps} of {result.total_steps}; "
                               f"run again to resume from {folder / 'checkpoints'}")
        status = "resumed" if result.resumed_from_step is not None else "trained"
        last = result.history[-1] if result.history else {}
        done = {
            "key": key, "kind": kind, "m0_identity": identity,
            "adapter_sha256": adapter_sha256(result.output_dir) if kind == "lora" else None,
            "train": {"steps": result.steps, "total_steps": result.total_steps, "pairs": len(pairs),
                      "wall_time_s": round(result.wall_time_s, 3), "ref_cache_hit": result.ref_cache_hit,
                      "resumed_from_step": result.resumed_from_step, "final_loss": last.get("loss"),
                      "final_reward_acc": last.get("reward_acc"), "final_margin": last.get("margin")},
        }
        from benchcore.fileio import write_text_atomic

        write_text_atomic(folder / "intervention.json", json.dumps(intervention.to_dict(), indent=2) + "\n")
        write_text_atomic(folder / "done.json", json.dumps(done, indent=2, sort_keys=True) + "\n")
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)  # the finished weights are all a reuse needs
    del loaded
    record = {
        "key": key, "status": status, "folder": str(folder), "kind": kind,
        "adapter_sha256": done.get("adapter_sha256"), "m0_identity": identity, "recipe": recipe.to_dict(),
        "data": {"source": before.source, "revision": before.revision, "data_hash_before": before.data_hash,
                 "data_hash_after": mitigated.data_hash, "derivation": list(mitigated.derivation)},
        "intervention": intervention.to_dict(with_ids=False),
        "pairs_before": len(before), "pairs_after": len(mitigated),
        "contaminated": _contamination(before, intervention),
        "train": done.get("train", {}),
        "wall_time_s": round(time.perf_counter() - start, 3),
    }
    return RetrainOutcome(key=key, status=status, folder=folder, kind=kind, record=record)
