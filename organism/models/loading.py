"""Load any profile's stage (base, M0, M1) as a ready-to-generate model, and say exactly what was loaded.

Every consumer (generation, attribution, training, mitigations) goes through `load_organism`, so the record it
returns is the one place that knows which weights are in memory; `LoadRecord.identity` is the cache key that
changes whenever the weights could differ. Hub checkpoints are resolved from the local cache first and the Hub is
only contacted when it is reachable (probed with a short timeout), so an offline machine gets a one-line error in
about a second instead of huggingface_hub's ~25 s of retries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchcore.errors import InputError
from benchcore.fileio import sha256_file
from organism.models.profiles import SMOL_BASE_ID, STAGES, Profile, get_profile, is_full_sha, smol_adapter_dir

DTYPES = ("bfloat16", "float32", "float16")
HUB_PROBE_TIMEOUT_S = 3.0

# What a causal-LM checkpoint needs; .bin shards are fetched only when a repo has no safetensors.
_HUB_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.txt", "*.model", "*.jinja", "*.tiktoken"]
_BIN_PATTERNS = ["pytorch_model*.bin"]
_ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


@dataclass(frozen=True)
class LoadRecord:
    """What was loaded, for results files and cache keys.

    adapter_path / adapter_sha256: the PEFT adapters merged into the weights, in order, joined with " + " when
    more than one (a smol stage adapter and a user's adapter). base_sha256: the hash of the base weights file
    where the base is a file rather than a Hub commit (the smol GGUF).
    """

    profile: str
    stage: str
    model_id: str
    revision: str | None
    adapter_path: str | None
    adapter_sha256: str | None
    dtype: str
    device: str
    chat_template_sha256: str | None
    base_sha256: str | None
    pad_token: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def identity(self) -> str:
        """Stable across runs and machines; differs whenever the weights in memory could differ."""
        parts = [f"{self.model_id}@{self.revision}"]
        if self.base_sha256:
            parts.append(f"base-sha256={self.base_sha256}")
        parts.append(f"adapter-sha256={self.adapter_sha256 or 'none'}")
        parts.append(f"dtype={self.dtype}")
        return "|".join(parts)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["notes"] = list(self.notes)
        data["identity"] = self.identity
        return data


@dataclass
class LoadedOrganism:
    model: Any
    tokenizer: Any
    record: LoadRecord


# ------------------------------------------------------------------------------------------------ validation
def _check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise InputError(None, "stage", f"{stage!r} is not one of {', '.join(STAGES)}")
    return stage


def _check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise InputError(None, "dtype", f"{dtype!r} is not one of {', '.join(DTYPES)}")
    return dtype


def cpu_compute_dtype(dtype: str, device: str) -> tuple[str, str | None]:
    """The dtype a model really computes in, and a note when it is not the one asked for.

    A CPU without bfloat16 (or float16) matrix kernels (AVX2 without AVX512-BF16 or AMX) emulates them element by
    element: on a 2-core AVX2 machine a 256x576 by 576x1536 matmul ran at 1.2 GFLOP/s in bfloat16 and 119 in
    float32, which turns a 5-minute evaluation into hours. There the model computes in float32; the record says so
    and its identity carries float32, so no cache entry or result is ever passed off as bfloat16.
    """
    if device != "cpu" or dtype == "float32" or _native_cpu_kernels(dtype) is not False:
        return dtype, None
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    return "float32", (f"{dtype} asked for, computed in float32: this CPU ({capability}) has no {dtype} matrix "
                       "kernels, which would run about 100x slower than float32")


def _native_cpu_kernels(dtype: str) -> bool | None:
    """Whether this CPU has matrix kernels for `dtype` (oneDNN's own check); None when torch cannot tell."""
    import torch

    probe = {"bfloat16": "_is_mkldnn_bf16_supported", "float16": "_is_mkldnn_fp16_supported"}[dtype]
    try:
        return bool(getattr(torch.ops.mkldnn, probe)())
    except (AttributeError, RuntimeError):
        return None


def _check_device_syntax(device: str) -> str:
    device = str(device).strip()
    if device in ("cpu", "cuda", "auto"):
        return device
    if device.startswith("cuda:") and device[5:].isdigit():
        return device
    raise InputError(None, "device", f"{device!r} is not cpu, cuda, cuda:N or auto")


def resolve_device(device: str) -> tuple[str, Any]:
    """(recorded device, device_map for from_pretrained or None for CPU)."""
    device = _check_device_syntax(device)
    if device == "cpu":
        return "cpu", None
    import torch

    available = torch.cuda.is_available()
    if device == "auto":
        return ("auto", "auto") if available else ("cpu", None)
    if not available:
        raise InputError(None, "device", f"{device!r} asked for, but CUDA is not available here "
                                         f"(torch {torch.__version__}); use --device cpu")
    index = int(device[5:]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise InputError(None, "device", f"{device!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    name = f"cuda:{index}"
    return name, {"": name}


def _check_adapter_dir(adapter: str | Path | None) -> Path | None:
    if adapter is None:
        return None
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise InputError(path, "adapter", "not a PEFT adapter directory (no adapter_config.json)")
    if not any((path / name).is_file() for name in _ADAPTER_WEIGHTS):
        raise InputError(path, "adapter", f"no adapter weights ({' or '.join(_ADAPTER_WEIGHTS)})")
    return path.resolve()


# ------------------------------------------------------------------------------------------------ hashing
def adapter_sha256(path: Path) -> str:
    """Hash of what changes an adapter's effect: its config and weights files (not README or logs)."""
    digest = hashlib.sha256()
    for name in ("adapter_config.json", *_ADAPTER_WEIGHTS):
        file = Path(path) / name
        if file.is_file():
            digest.update(name.encode() + b"\0" + sha256_file(file).encode() + b"\n")
    return digest.hexdigest()


def chat_template_sha256(tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if template is None:
        return None
    if not isinstance(template, str):  # a dict of named templates
        template = json.dumps(template, sort_keys=True)
    return hashlib.sha256(template.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------------------ Hub resolution
def _offline_env() -> bool:
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "")
    return bool(constants.HF_HUB_OFFLINE) or value.strip().upper() in ("1", "ON", "YES", "TRUE")


def _hub_cache() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """A TCP connect to the Hub endpoint (or the HTTPS proxy), bounded by `timeout` including DNS."""
    from urllib.parse import urlparse

    from huggingface_hub import constants

    target = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or constants.ENDPOINT
    url = urlparse(target if "://" in target else f"http://{target}")
    host = url.hostname
    port = url.port or (443 if url.scheme == "https" else 80)
    if not host:
        return False
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _how_to_get(repo_id: str, revision: str) -> str:
    return (f"on a machine with Hub access run `hf download {repo_id} --revision {revision}` "
            f"(`huggingface-cli download` in huggingface_hub < 1.0) or `organism-bench pull`, then copy the "
            f"Hugging Face cache (HF_HOME) here")


def _missing_files(folder: Path) -> list[str]:
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    has_weights = any(folder.glob("*.safetensors")) or any(folder.glob("pytorch_model*.bin"))
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            shards = set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values())
            absent = sorted(s for s in shards if not (folder / s).is_file())
            if absent:
                missing.append(f"weight shards {', '.join(absent)}")
            has_weights = has_weights and not absent
    if not has_weights:
        missing.append("weights (*.safetensors or pytorch_model*.bin)")
    tokenizer_files = ("tokenizer.json", "vocab.json", "tokenizer.model")
    if not any((folder / name).is_file() for name in tokenizer_files):
        missing.append("tokenizer files")
    return missing


def resolve_snapshot(repo_id: str, revision: str) -> tuple[Path, str, list[str]]:
    """(local snapshot folder, resolved commit, notes). Local cache first; the Hub only when reachable."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    source = f"{repo_id}@{revision}"
    cache = _hub_cache()
    folder: Path | None = None
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        folder = None
    missing = _missing_files(folder) if folder is not None else ["the whole snapshot"]
    notes: list[str] = []
    if missing:
        if _offline_env():
            raise InputError(source, None, f"not in the local Hugging Face cache ({cache}; missing "
                                           f"{'; '.join(missing)}) and HF_HUB_OFFLINE is set: {_how_to_get(repo_id, revision)}")
        if not hub_reachable():
            raise InputError(source, None, f"not in the local Hugging Face cache ({cache}; missing "
                                           f"{'; '.join(missing)}) and the Hub is unreachable: "
                                           f"{_how_to_get(repo_id, revision)}")
        try:
            folder = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache,
                                            allow_patterns=_HUB_PATTERNS))
            if not any(folder.glob("*.safetensors")):
                folder = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache,
                                                allow_patterns=_HUB_PATTERNS + _BIN_PATTERNS))
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
            reason = " ".join(str(exc).split())[:300]
            raise InputError(source, None, f"download failed: {type(exc).__name__}: {reason}") from exc
        missing = _missing_files(folder)
        if missing:
            raise InputError(source, None, f"the snapshot lacks {'; '.join(missing)}")
        notes.append(f"downloaded {repo_id}@{revision} into {cache}")
    resolved = folder.name
    if resolved != revision:
        notes.append(f"revision {revision!r} resolved to commit {resolved}")
    return folder, resolved, notes


# ------------------------------------------------------------------------------------------------ adapters
def _names_match(claimed: str, accepted: set[str]) -> bool:
    if claimed in accepted:
        return True
    for name in accepted:
        if "/" in name and not name.startswith("/"):
            org, _, repo = name.partition("/")
            if f"models--{org}--{repo}" in claimed.replace("\\", "/"):
                return True
    return False


def _read_adapter_config(path: Path) -> dict[str, Any]:
    cfg_file = path / "adapter_config.json"
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(cfg_file, None, f"not valid JSON: {exc}") from exc
    if not isinstance(cfg, dict):
        raise InputError(cfg_file, None, "expected a JSON object")
    return cfg


def _adapter_tensors(path: Path) -> dict[str, tuple[int, ...]]:
    st = path / "adapter_model.safetensors"
    if st.is_file():
        from safetensors import safe_open

        with safe_open(str(st), "pt") as fh:
            return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    import torch

    state = torch.load(path / "adapter_model.bin", map_location="cpu", weights_only=True)
    return {k: tuple(v.shape) for k, v in state.items()}


def check_adapter(model: Any, path: Path, accepted_names: set[str]) -> dict[str, Any]:
    """Refuse an adapter built for another base before PEFT fails deep inside load_state_dict."""
    import torch

    cfg = _read_adapter_config(path)
    cfg_file = path / "adapter_config.json"
    claimed = cfg.get("base_model_name_or_path")
    if claimed and not _names_match(str(claimed), accepted_names):
        raise InputError(cfg_file, "base_model_name_or_path",
                         f"adapter was built on {claimed!r}, but the model loaded is {sorted(accepted_names)[0]!r}")
    arch = (cfg.get("auto_mapping") or {}).get("base_model_class") if isinstance(cfg.get("auto_mapping"), dict) else None
    if arch and arch != type(model).__name__:
        raise InputError(cfg_file, "auto_mapping.base_model_class",
                         f"adapter was built for {arch}, but the model loaded is {type(model).__name__}")
    hidden = getattr(model.config, "hidden_size", None)
    for key, shape in _adapter_tensors(path).items():
        for part, dim in ((".lora_A.", 1), (".lora_B.", 0)):
            if part not in key:
                continue
            module_name = key.split(part)[0]
            for prefix in ("base_model.model.", "base_model."):
                if module_name.startswith(prefix):
                    module_name = module_name[len(prefix):]
                    break
            try:
                module = model.get_submodule(module_name)
            except AttributeError:
                raise InputError(cfg_file, "target_modules",
                                 f"adapter targets {module_name!r}, which the loaded model does not have") from None
            if not isinstance(module, torch.nn.Linear) or len(shape) != 2:
                continue
            expected = module.in_features if dim == 1 else module.out_features
            if shape[dim] != expected:
                raise InputError(cfg_file, "target_modules",
                                 f"adapter weight {key} has shape {list(shape)}, but {module_name} is "
                                 f"{module.in_features}->{module.out_features} (hidden size {hidden}): "
                                 "built for a model of another size")
    return cfg


def merge_adapter(model: Any, path: Path, accepted_names: set[str] | frozenset[str]) -> Any:
    """Merge a PEFT adapter into `model` (faster generation, and the result is a plain model again)."""
    from peft import PeftModel

    check_adapter(model, path, set(accepted_names))
    peft_model = PeftModel.from_pretrained(model, str(path), is_trainable=False)
    return peft_model.merge_and_unload()


# ------------------------------------------------------------------------------------------------ tokenizer
def _prepare_tokenizer(tokenizer: Any, notes: list[str]) -> None:
    """Left padding (batched generation continues from the last real token) and a pad token."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
        notes.append(f"tokenizer had no pad token: using eos {tokenizer.eos_token!r}")


def _tie_pad_token(model: Any, tokenizer: Any) -> None:
    for cfg in (model.config, getattr(model, "generation_config", None)):
        if cfg is not None:
            cfg.pad_token_id = tokenizer.pad_token_id


def _load_tokenizer(folder: Path, trust_remote_code: bool) -> Any:
    from transformers import AutoTokenizer

    if not (folder / "tokenizer.json").is_file() and (folder / "vocab.json").is_file():
        # e.g. OLMo-2-0325-32B-SFT ships only vocab.json + merges.txt, which the generic backend cannot read
        return AutoTokenizer.from_pretrained(str(folder), tokenizer_type="gpt2", local_files_only=True,
                                             trust_remote_code=trust_remote_code)
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=trust_remote_code)


def _torch_dtype(dtype: str) -> Any:
    import torch

    return getattr(torch, dtype)


def _set_name(model: Any, name: str) -> None:
    """So adapters trained on this model (PEFT reads `name_or_path`) name it portably, not by a local path."""
    model.name_or_path = name
    model.config._name_or_path = name


# ------------------------------------------------------------------------------------------------ loaders
def _smol_chain(stage: str, notes: list[str]) -> list[str]:
    """The stage adapters to merge, in order: m1 sits on m0 when its config names the m0 stage as its base."""
    def built(which: str) -> bool:
        return (smol_adapter_dir(which) / "adapter_config.json").is_file()

    if stage == "base":
        return []
    if not built(stage):
        notes.append(f"adapter {stage} not built yet: base model stands in")
        return []
    own = smol_adapter_dir(stage)
    claimed = str(_read_adapter_config(own).get("base_model_name_or_path") or "")
    if stage == "m1" and claimed == f"{SMOL_BASE_ID}+m0":
        if not built("m0"):
            raise InputError(own / "adapter_config.json", "base_model_name_or_path",
                             "the m1 adapter is built on m0, but the m0 adapter is missing")
        return ["m0", "m1"]
    return [stage]


@dataclass(frozen=True)
class AdapterStep:
    """One adapter to merge: the base names its config may claim, and the name the merged model then goes by
    (PEFT writes it into adapters later trained on top, so it must be portable, not a local path)."""

    path: Path
    accepted_names: frozenset[str]
    name_after: str


@dataclass(frozen=True)
class OrganismSource:
    """One stage located, hashed and described before any weight is read.

    Cached reference runs need only the record's identity, and engines that read weights themselves (vLLM) need
    only the folder and the adapters, so loading the model is a separate, explicit step: `load()`.
    """

    record: LoadRecord
    folder: Path  # a local checkpoint folder in the Hub layout
    base_name: str
    adapters: tuple[AdapterStep, ...]
    load_dtype: str  # float32 when adapters are merged into the smol base, else the record's dtype
    device_map: Any  # from_pretrained's; None = CPU
    place_after_merge: bool  # smol: merge on the CPU, then move
    trust_remote_code: bool
    tokenizer: Any = dataclasses.field(compare=False, repr=False, default=None)

    def load(self) -> LoadedOrganism:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(
            str(self.folder), dtype=_torch_dtype(self.load_dtype),
            device_map=None if self.place_after_merge else self.device_map, local_files_only=True,
            trust_remote_code=self.trust_remote_code, weights_only=True)
        _set_name(model, self.base_name)
        for step in self.adapters:
            model = merge_adapter(model, step.path, step.accepted_names)
            _set_name(model, step.name_after)
        if self.load_dtype != self.record.dtype:
            model = model.to(_torch_dtype(self.record.dtype))
        if self.place_after_merge and self.device_map is not None:
            model = model.to(self.record.device)
        model.eval()
        _tie_pad_token(model, self.tokenizer)
        notes = list(self.record.notes)
        if self.record.device == "auto":
            placed = sorted({str(d) for d in (getattr(model, "hf_device_map", None) or {}).values()})
            notes.append(f"device_map=auto placed the model on {', '.join(placed) or 'one device'}")
        return LoadedOrganism(model, self.tokenizer, dataclasses.replace(self.record, notes=tuple(notes)))


def _source(profile: Profile, stage: str, folder: Path, model_id: str, revision: str | None,
            base_sha256: str | None, base_name: str, adapters: list[AdapterStep], dtype: str, device: str,
            device_map: Any, trust_remote_code: bool, notes: list[str], *, smol: bool = False) -> OrganismSource:
    tokenizer = _load_tokenizer(folder, trust_remote_code)
    _prepare_tokenizer(tokenizer, notes)
    if smol and device_map is not None:
        device = "cuda:0" if device_map == "auto" else device_map[""]
    record = LoadRecord(
        profile=profile.name, stage=stage, model_id=model_id, revision=revision,
        adapter_path=" + ".join(str(a.path) for a in adapters) or None,
        adapter_sha256=_combine([adapter_sha256(a.path) for a in adapters]), dtype=dtype, device=device,
        chat_template_sha256=chat_template_sha256(tokenizer), base_sha256=base_sha256,
        pad_token=tokenizer.pad_token, notes=tuple(notes))
    # Merging into the smol base in float32 and casting once keeps the merged weights as exact as the dtype
    # allows; with nothing to merge, loading straight into the dtype is ~3x faster than casting afterwards.
    load_dtype = "float32" if (smol and adapters) else dtype
    return OrganismSource(record, folder, base_name, tuple(adapters), load_dtype, device_map, smol,
                          trust_remote_code, tokenizer)


def _user_adapter(adapter: Path | None, name: str, accepted: set[str], notes: list[str]) -> list[AdapterStep]:
    if adapter is None:
        return []
    notes.append(f"user adapter merged: {adapter}")
    return [AdapterStep(adapter, frozenset(accepted), f"{name}+adapter")]


def _locate_smol(profile: Profile, stage: str, dtype: str, device: str, device_map: Any, adapter: Path | None,
                 trust_remote_code: bool) -> OrganismSource:
    from organism.models import smol

    notes: list[str] = []
    copy = smol.ensure_copy()
    source = smol.copy_source(copy)
    steps: list[AdapterStep] = []
    name = SMOL_BASE_ID
    accepted = {name, *_smol_copy_names(copy)}
    for which in _smol_chain(stage, notes):
        after = f"{SMOL_BASE_ID}+{which}"
        steps.append(AdapterStep(smol_adapter_dir(which), frozenset(accepted), after))
        name, accepted = after, {after}
    steps += _user_adapter(adapter, name, {name}, notes)
    # File names, not paths: records are compared across machines (the copy's path is in `organism info`).
    notes.append(f"base converted from {Path(str(source.get('gguf'))).name} to a cached safetensors copy")
    revision = f"{smol.SMOL_WHEEL}=={source.get('wheel_version') or profile.base.revision}"
    return _source(profile, stage, copy, SMOL_BASE_ID, revision, source.get("gguf_sha256"), SMOL_BASE_ID, steps,
                   dtype, device, device_map, trust_remote_code, notes, smol=True)


def _smol_copy_names(copy: Path) -> set[str]:
    return {str(copy), copy.name}


def _combine(hashes: list[str]) -> str | None:
    if not hashes:
        return None
    if len(hashes) == 1:
        return hashes[0]
    return hashlib.sha256("+".join(hashes).encode()).hexdigest()


def _locate_hub(profile: Profile, stage: str, dtype: str, device: str, device_map: Any, revision: str | None,
                adapter: Path | None, trust_remote_code: bool) -> OrganismSource:
    ref = profile.ref(stage)
    if revision is not None:
        ref = ref.with_revision(revision)
    notes: list[str] = []
    if not ref.pinned:
        notes.append(f"{ref.repo_id}@{ref.revision} is not pinned to a commit")
    folder, resolved, hub_notes = resolve_snapshot(ref.repo_id, ref.revision)
    notes.extend(hub_notes)
    return _locate_folder(profile, stage, folder, ref.repo_id, resolved, None, dtype, device, device_map, adapter,
                          trust_remote_code, notes)


def _locate_model_path(profile: Profile, stage: str, model_path: str | Path, dtype: str, device: str,
                       device_map: Any, revision: str | None, adapter: Path | None,
                       trust_remote_code: bool) -> OrganismSource:
    """A whole checkpoint in place of the stage's (a `model` mitigation): a local folder or a Hub repo id."""
    local = Path(model_path).expanduser()
    notes = [f"checkpoint {model_path} replaces the profile's {stage}"]
    if local.is_dir():
        if revision is not None:
            raise InputError(local, "revision", "a local checkpoint folder has no revision (it is hashed instead)")
        folder = local.resolve()
        missing = _missing_files(folder)
        if missing:
            raise InputError(folder, "model_path", f"not a loadable checkpoint: missing {'; '.join(missing)}")
        return _locate_folder(profile, stage, folder, str(folder), None, folder_sha256(folder), dtype, device,
                              device_map, adapter, trust_remote_code, notes)
    text = str(model_path)
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise InputError(None, "model_path", f"{text!r} is neither a local checkpoint folder nor a Hub repo id")
    rev = revision or "main"
    if not is_full_sha(rev):
        notes.append(f"{text}@{rev} is not pinned to a commit")
    folder, resolved, hub_notes = resolve_snapshot(text, rev)
    notes.extend(hub_notes)
    return _locate_folder(profile, stage, folder, text, resolved, None, dtype, device, device_map, adapter,
                          trust_remote_code, notes)


def folder_sha256(folder: Path) -> str:
    """Content hash of a local checkpoint (every regular file, by name), each file hashed once per size+mtime."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        digest.update(file.name.encode() + b"\0" + cached_sha256(file).encode() + b"\n")
    return digest.hexdigest()


def cached_sha256(path: Path) -> str:
    from benchcore.paths import cache_dir
    from organism.models.smol import atomic_write_json

    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    index_file = cache_dir() / "file-hashes.json"
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
        if not isinstance(index, dict):
            index = {}
    except (OSError, ValueError):
        index = {}
    if key in index:
        return str(index[key])
    sha = sha256_file(path)
    index = {k: v for k, v in index.items() if not k.startswith(f"{path}|")}
    index[key] = sha
    atomic_write_json(index_file, index)
    return sha


def _locate_folder(profile: Profile, stage: str, folder: Path, model_id: str, revision: str | None,
                   base_sha256: str | None, dtype: str, device: str, device_map: Any, adapter: Path | None,
                   trust_remote_code: bool, notes: list[str]) -> OrganismSource:
    if not any(folder.glob("*.safetensors")):
        notes.append("weights are pytorch_model*.bin shards: loaded with torch weights_only=True "
                     "(no arbitrary unpickling)")
    steps = _user_adapter(adapter, model_id, {model_id, str(folder)}, notes)
    return _source(profile, stage, folder, model_id, revision, base_sha256, model_id, steps, dtype, device,
                   device_map, trust_remote_code, notes)


def locate_organism(profile: str | Profile, stage: str = "m1", *, dtype: str = "bfloat16", device: str = "cpu",
                    revision: str | None = None, adapter: str | Path | None = None,
                    model_path: str | Path | None = None, trust_remote_code: bool = False) -> OrganismSource:
    """Find, check and hash one stage without reading its weights (see `load_organism` for the arguments);
    `.record.identity` is the cache key, `.load()` reads the weights."""
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    _check_stage(stage)
    _check_dtype(dtype)
    _check_device_syntax(device)
    adapter_dir = _check_adapter_dir(adapter)
    if prof.family == "smol" and model_path is None and revision is not None:
        raise InputError(None, "revision", "profile 'smol' ships with the package and has no Hub revisions")
    if revision is not None and not str(revision).strip():
        raise InputError(None, "revision", "empty revision")
    if prof.family == "smol" and model_path is None:
        from organism.models import smol

        smol.gguf_path()  # a missing wheel is the user's to fix: say so before anything slow
    recorded, device_map = resolve_device(device)
    dtype, note = cpu_compute_dtype(dtype, recorded)
    if model_path is not None:
        source = _locate_model_path(prof, stage, model_path, dtype, recorded, device_map, revision, adapter_dir,
                                    trust_remote_code)
    elif prof.family == "smol":
        source = _locate_smol(prof, stage, dtype, recorded, device_map, adapter_dir, trust_remote_code)
    else:
        source = _locate_hub(prof, stage, dtype, recorded, device_map, revision, adapter_dir, trust_remote_code)
    if note is None:
        return source
    return dataclasses.replace(source, record=dataclasses.replace(source.record, notes=(*source.record.notes, note)))


def load_organism(profile: str | Profile, stage: str = "m1", *, dtype: str = "bfloat16", device: str = "cpu",
                  revision: str | None = None, adapter: str | Path | None = None,
                  model_path: str | Path | None = None, trust_remote_code: bool = False) -> LoadedOrganism:
    """Load one stage of a profile, optionally with a local PEFT adapter merged on top.

    model_path: a whole checkpoint (local folder, or Hub repo id at `revision`) loaded in place of the stage's
    own, for `model` mitigations; the record names it, so its identity differs from the stage's.
    """
    return locate_organism(profile, stage, dtype=dtype, device=device, revision=revision, adapter=adapter,
                           model_path=model_path, trust_remote_code=trust_remote_code).load()
