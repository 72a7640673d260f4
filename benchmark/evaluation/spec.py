"""The mitigation spec: what a submission asks the benchmark to grade, checked before any GPU time is spent.

A spec is a YAML/JSON file (or a dict) with `schema_version: 1`, a `name`, a `kind` in {none, model, inference,
data}, a `parameters` block (who made it, how, at what cost) and the block of its kind. Every problem becomes one
`InputError(source, dotted.field, reason)` so a submitter knows exactly which key to fix; unknown keys are errors
because a misspelt optional key would otherwise be silently ignored and grade the wrong thing.

The spec hash identifies the submission by content: referenced files (ranking, steering vector, adapter or
checkpoint weights) enter it by the sha256 of their bytes, never by their path, so moving a submission folder
does not change its hash while editing one byte of a ranking does.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchcore.errors import InputError
from organism.models.steering import load_vector

SCHEMA_VERSION = 1
KINDS = ("none", "model", "inference", "data")
DEFAULT_PROFILE = "smol"
STEER_MODES = ("add", "project_out")
STEER_POSITIONS = ("generated", "all")
DATA_ACTIONS = ("remove", "flip", "exclude", "random")
EXCLUDE_SIDES = ("either", "chosen", "rejected")

_KIND_HELP = {
    "none": "grades the M1 baseline itself (no mitigation)",
    "model": "a checkpoint or PEFT adapter (local folder, or Hub repo id + revision)",
    "inference": "a steering vector at a decoder layer, or a system prompt, applied to M1 at generation time",
    "data": "remove/flip the top-N ranked preference pairs, exclude source models, or a random-N control; "
            "the benchmark retrains DPO from M0",
}


# ----------------------------------------------------------------------------------------------------------------
# dataclasses


@dataclass(frozen=True)
class ComputeCost:
    gpu_hours: float | None = None
    usd: float | None = None
    note: str | None = None


@dataclass(frozen=True)
class Parameters:
    """Who made the mitigation and what it cost: shown on the leaderboard next to the scores."""

    method: str
    authors: tuple[str, ...]
    description: str
    compute_cost: ComputeCost
    date: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class ModelMitigation:
    path: Path | None = None
    repo_id: str | None = None
    revision: str | None = None
    adapter: bool = False


@dataclass(frozen=True)
class SteeringSpec:
    vector: Path
    layer: int
    mode: str = "add"
    scale: float = 1.0
    positions: str = "generated"


@dataclass(frozen=True)
class InferenceMitigation:
    steering: SteeringSpec | None = None
    system_prompt: str | None = None


@dataclass(frozen=True)
class DataMitigation:
    action: str
    ranking: Path | None = None
    top_n: int | None = None
    models: tuple[str, ...] = ()
    side: str | None = None
    seed: int | None = None
    then: str | None = None


@dataclass(frozen=True)
class MitigationSpec:
    schema_version: int
    name: str
    kind: str
    profile: str = DEFAULT_PROFILE
    parameters: Parameters | None = None
    model: ModelMitigation | None = None
    inference: InferenceMitigation | None = None
    data: DataMitigation | None = None
    source: str | None = None
    # dotted field -> sha256 of the referenced file(s); paths never enter the hash, these digests do.
    files: tuple[tuple[str, str], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The normalized spec (defaults filled in, paths absolute); `load_spec` reads it back to an equal spec."""
        out: dict[str, Any] = {"schema_version": self.schema_version, "name": self.name, "kind": self.kind,
                               "profile": self.profile}
        if self.parameters is not None:
            p = self.parameters
            out["parameters"] = _drop_none({
                "method": p.method, "authors": list(p.authors), "description": p.description,
                "compute_cost": _drop_none({"gpu_hours": p.compute_cost.gpu_hours, "usd": p.compute_cost.usd,
                                            "note": p.compute_cost.note}),
                "date": p.date, "url": p.url})
        if self.model is not None:
            m = self.model
            out["model"] = _drop_none({"path": _str(m.path), "repo_id": m.repo_id, "revision": m.revision,
                                       "adapter": m.adapter})
        if self.inference is not None:
            if self.inference.steering is not None:
                s = self.inference.steering
                out["inference"] = {"steering": {"vector": str(s.vector), "layer": s.layer, "mode": s.mode,
                                                 "scale": s.scale, "positions": s.positions}}
            else:
                out["inference"] = {"system_prompt": self.inference.system_prompt}
        if self.data is not None:
            d = self.data
            out["data"] = _drop_none({"action": d.action, "ranking": _str(d.ranking), "top_n": d.top_n,
                                      "models": list(d.models) if d.action == "exclude" else None,
                                      "side": d.side, "seed": d.seed, "then": d.then})
        return out

    def file_digests(self) -> dict[str, str]:
        """dotted field -> sha256 of the referenced file(s), the part of the hash that paths stand for."""
        return dict(self.files)


def _str(p: Path | None) -> str | None:
    return None if p is None else str(p)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


# ----------------------------------------------------------------------------------------------------------------
# hashing


def spec_hash(spec: MitigationSpec) -> str:
    """sha256 of the canonical JSON of the spec, with every path replaced by the digest of its bytes."""
    view = spec.to_dict()
    for dotted, digest in spec.files:
        head, _, key = dotted.rpartition(".")
        node = view
        for part in head.split(".") if head else []:
            node = node[part]
        node[key] = f"sha256:{digest}"
    canonical = json.dumps(view, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _dir_sha256(folder: Path, names: list[str]) -> str:
    """One digest over several files of a folder: name and content of each, in sorted order."""
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(name.encode("utf-8") + b"\0" + file_sha256(folder / name).encode("ascii") + b"\n")
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# loading


class _Ctx:
    """Where errors point (the spec file) and where relative paths resolve (its folder)."""

    def __init__(self, source: str, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir

    def fail(self, dotted: str | None, reason: str) -> InputError:
        return InputError(self.source, dotted, " ".join(str(reason).split()))


def load_spec(spec: str | os.PathLike | Mapping[str, Any], *, profile: str | None = None) -> MitigationSpec:
    """Read and fully validate a spec; `profile` overrides the spec's own `profile` (the CLI's --profile)."""
    if isinstance(spec, Mapping):
        ctx = _Ctx("<spec>", Path.cwd())
        raw: Any = dict(spec)
    else:
        path = Path(spec)
        ctx = _Ctx(str(path), path.resolve().parent)
        raw = _read_file(path, ctx)
    return _parse(raw, ctx, profile)


def _read_file(path: Path, ctx: _Ctx) -> Any:
    if not path.is_file():
        raise ctx.fail(None, "spec file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ctx.fail(None, f"cannot read: {exc}") from exc
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ctx.fail(None, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ctx.fail(None, f"not valid YAML: {problem}{where}") from exc


def _parse(raw: Any, ctx: _Ctx, profile_override: str | None) -> MitigationSpec:
    if not isinstance(raw, Mapping):
        raise ctx.fail(None, f"the spec must be a mapping of keys, got {_tname(raw)}")
    _check_keys(raw, ("schema_version", "name", "kind", "profile", "parameters", "model", "inference", "data"),
                "", ctx)
    version = _req(raw, "schema_version", "", ctx)
    if not _is_int(version) or version != SCHEMA_VERSION:
        raise ctx.fail("schema_version", f"unsupported version {version!r} (this organism-bench reads "
                                         f"{SCHEMA_VERSION})")
    name = _string(_req(raw, "name", "", ctx), "name", ctx)
    kind = _choice(_req(raw, "kind", "", ctx), KINDS, "kind", ctx)
    own = _string(raw["profile"], "profile", ctx) if "profile" in raw else None
    if profile_override and own and own != profile_override:
        raise ctx.fail("profile", f"the spec is for profile {own!r}, but {profile_override!r} was asked for")
    profile_name = profile_override or own or DEFAULT_PROFILE
    profile = _lookup_profile(profile_name, ctx)

    for other in ("model", "inference", "data"):
        if other != kind and other in raw:
            raise ctx.fail(other, f"not allowed for kind {kind!r} (kind {other!r} uses it)")
    if kind != "none" and "parameters" not in raw:
        raise ctx.fail("parameters", "missing (required for every kind except none)")
    parameters = _parameters(raw["parameters"], ctx) if "parameters" in raw else None

    files: dict[str, str] = {}
    model = inference = data = None
    if kind != "none" and kind not in raw:
        raise ctx.fail(kind, f"missing (required for kind {kind!r})")
    if kind == "model":
        model = _model(raw["model"], ctx, profile, files)
    elif kind == "inference":
        inference = _inference(raw["inference"], ctx, profile, files)
    elif kind == "data":
        data = _data(raw["data"], ctx, files)
    return MitigationSpec(schema_version=SCHEMA_VERSION, name=name, kind=kind, profile=profile_name,
                          parameters=parameters, model=model, inference=inference, data=data,
                          source=None if ctx.source == "<spec>" else ctx.source,
                          files=tuple(sorted(files.items())))


# ----------------------------------------------------------------------------------------------------------------
# blocks


def _parameters(raw: Any, ctx: _Ctx) -> Parameters:
    where = "parameters"
    _mapping(raw, where, ctx)
    _check_keys(raw, ("method", "authors", "description", "compute_cost", "date", "url"), where, ctx)
    method = _string(_req(raw, "method", where, ctx), f"{where}.method", ctx)
    authors_raw = _req(raw, "authors", where, ctx)
    if isinstance(authors_raw, str):
        authors_raw = [authors_raw]
    if not isinstance(authors_raw, list) or not authors_raw:
        raise ctx.fail(f"{where}.authors", "must be a non-empty list of names or one name")
    authors = tuple(_string(a, f"{where}.authors[{i}]", ctx) for i, a in enumerate(authors_raw))
    description = _string(_req(raw, "description", where, ctx), f"{where}.description", ctx)
    cost_raw = _req(raw, "compute_cost", where, ctx)
    cw = f"{where}.compute_cost"
    _mapping(cost_raw, cw, ctx)
    _check_keys(cost_raw, ("gpu_hours", "usd", "note"), cw, ctx)
    if "gpu_hours" not in cost_raw and "usd" not in cost_raw:
        raise ctx.fail(cw, "give gpu_hours and/or usd")
    cost = ComputeCost(
        gpu_hours=_nonneg(cost_raw["gpu_hours"], f"{cw}.gpu_hours", ctx) if "gpu_hours" in cost_raw else None,
        usd=_nonneg(cost_raw["usd"], f"{cw}.usd", ctx) if "usd" in cost_raw else None,
        note=_string(cost_raw["note"], f"{cw}.note", ctx, empty_ok=True) if "note" in cost_raw else None)
    date = None
    if "date" in raw:
        value = raw["date"]
        if isinstance(value, _dt.datetime):
            value = value.date()
        if isinstance(value, _dt.date):
            date = value.isoformat()
        else:
            text = _string(value, f"{where}.date", ctx)
            try:
                date = _dt.date.fromisoformat(text).isoformat()
            except ValueError as exc:
                raise ctx.fail(f"{where}.date", f"not an ISO date (YYYY-MM-DD): {text!r}") from exc
    url = _string(raw["url"], f"{where}.url", ctx) if "url" in raw else None
    return Parameters(method=method, authors=authors, description=description, compute_cost=cost, date=date,
                      url=url)


def _model(raw: Any, ctx: _Ctx, profile: Any, files: dict[str, str]) -> ModelMitigation:
    where = "model"
    _mapping(raw, where, ctx)
    _check_keys(raw, ("path", "repo_id", "revision", "adapter"), where, ctx)
    has_path, has_repo = "path" in raw, "repo_id" in raw
    if has_path == has_repo:
        raise ctx.fail(where, "give exactly one of path (a local folder) or repo_id (a Hub repo)")
    adapter_flag = raw.get("adapter")
    if adapter_flag is not None and not isinstance(adapter_flag, bool):
        raise ctx.fail(f"{where}.adapter", f"must be true or false, got {_tname(adapter_flag)}")
    if has_repo:
        repo_id = _string(raw["repo_id"], f"{where}.repo_id", ctx)
        if repo_id.count("/") != 1 or any(not part for part in repo_id.split("/")):
            raise ctx.fail(f"{where}.repo_id", f"expected OWNER/NAME, got {repo_id!r}")
        if "revision" not in raw:
            raise ctx.fail(f"{where}.revision", "missing (required for a repo_id: pin a commit so results are "
                                                "reproducible)")
        revision = _string(raw["revision"], f"{where}.revision", ctx)
        return ModelMitigation(repo_id=repo_id, revision=revision, adapter=bool(adapter_flag))
    if "revision" in raw:
        raise ctx.fail(f"{where}.revision", "only meaningful with repo_id (a local path is hashed instead)")
    folder = _path(raw["path"], f"{where}.path", ctx, want_dir=True)
    has_adapter_config = (folder / "adapter_config.json").is_file()
    adapter = has_adapter_config if adapter_flag is None else adapter_flag
    if adapter and not has_adapter_config:
        raise ctx.fail(f"{where}.adapter", f"true, but {folder} has no adapter_config.json")
    if not adapter and has_adapter_config:
        raise ctx.fail(f"{where}.adapter", f"false, but {folder} holds a PEFT adapter (adapter_config.json)")
    if adapter:
        weights = [n for n in ("adapter_model.safetensors", "adapter_model.bin") if (folder / n).is_file()]
        if not weights:
            raise ctx.fail(f"{where}.path", f"{folder} has adapter_config.json but no adapter_model.safetensors")
        _check_adapter_base(folder / "adapter_config.json", profile, ctx)
        files[f"{where}.path"] = _dir_sha256(folder, ["adapter_config.json", *weights])
    else:
        if not (folder / "config.json").is_file():
            raise ctx.fail(f"{where}.path", f"{folder} has no config.json (not a transformers checkpoint)")
        names = [p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
        if not any(n.endswith((".safetensors", ".bin", ".gguf")) for n in names):
            raise ctx.fail(f"{where}.path", f"{folder} holds no weight files (*.safetensors)")
        # every file of the checkpoint: a full 7B checkpoint takes a while to hash, once per load
        files[f"{where}.path"] = _dir_sha256(folder, names)
    return ModelMitigation(path=folder, adapter=adapter)


def _check_adapter_base(config_path: Path, profile: Any, ctx: _Ctx) -> None:
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ctx.fail("model.path", f"{config_path} is not valid JSON: {exc}") from exc
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not isinstance(base, str) or not base:
        raise ctx.fail("model.path", f"{config_path} has no base_model_name_or_path")
    known = _profile_bases(profile)
    if not known:
        return
    if not any(_same_model(base, k) for k in known):
        raise ctx.fail("model.path", f"adapter was trained on {base!r}, but profile expects one of "
                                     f"{sorted(known)}")


def _same_model(claimed: str, known: str) -> bool:
    """Repo ids compare case-insensitively; a local folder or a Hub cache snapshot (models--org--name) matches a
    repo id by its name."""
    a, b = claimed.replace("\\", "/").rstrip("/").lower(), known.rstrip("/").lower()
    if a == b or a.rsplit("/", 1)[-1] == b.rsplit("/", 1)[-1]:
        return True
    org, _, repo = b.partition("/")
    return bool(repo) and f"models--{org}--{repo}" in a


def _inference(raw: Any, ctx: _Ctx, profile: Any, files: dict[str, str]) -> InferenceMitigation:
    where = "inference"
    _mapping(raw, where, ctx)
    _check_keys(raw, ("steering", "system_prompt"), where, ctx)
    if ("steering" in raw) == ("system_prompt" in raw):
        raise ctx.fail(where, "give exactly one of steering or system_prompt")
    if "system_prompt" in raw:
        return InferenceMitigation(system_prompt=_string(raw["system_prompt"], f"{where}.system_prompt", ctx))
    sw = f"{where}.steering"
    s = raw["steering"]
    _mapping(s, sw, ctx)
    _check_keys(s, ("vector", "layer", "mode", "scale", "positions"), sw, ctx)
    vector_path = _path(_req(s, "vector", sw, ctx), f"{sw}.vector", ctx, want_dir=False)
    layer = _req(s, "layer", sw, ctx)
    if not _is_int(layer) or layer < 0:
        raise ctx.fail(f"{sw}.layer", f"must be an integer >= 0 (0-based decoder layer), got {layer!r}")
    num_layers = _profile_int(profile, ("num_layers", "num_hidden_layers", "n_layers"))
    if num_layers is not None and layer >= num_layers:
        raise ctx.fail(f"{sw}.layer", f"{layer} is out of range: the profile's model has {num_layers} decoder "
                                      f"layers (0..{num_layers - 1})")
    mode = _choice(s.get("mode", "add"), STEER_MODES, f"{sw}.mode", ctx)
    scale = _number(s.get("scale", 1.0), f"{sw}.scale", ctx)
    positions = _choice(s.get("positions", "generated"), STEER_POSITIONS, f"{sw}.positions", ctx)
    dim = _vector_dim(vector_path, f"{sw}.vector", ctx)
    hidden = _profile_int(profile, ("hidden_size", "d_model"))
    if hidden is not None and dim != hidden:
        raise ctx.fail(f"{sw}.vector", f"has {dim} dimensions, the profile's hidden size is {hidden}")
    files[f"{sw}.vector"] = file_sha256(vector_path)
    return InferenceMitigation(steering=SteeringSpec(vector=vector_path, layer=int(layer), mode=mode, scale=scale,
                                                     positions=positions))


def _vector_dim(path: Path, dotted: str, ctx: _Ctx) -> int:
    try:
        return int(load_vector(path, ctx.source, dotted).numel())
    except InputError as exc:
        raise ctx.fail(dotted, exc.reason) from exc


def _data(raw: Any, ctx: _Ctx, files: dict[str, str]) -> DataMitigation:
    where = "data"
    _mapping(raw, where, ctx)
    action = _choice(_req(raw, "action", where, ctx), DATA_ACTIONS, f"{where}.action", ctx)
    used = {"remove": ("ranking", "top_n"), "flip": ("ranking", "top_n"), "exclude": ("models", "side"),
            "random": ("top_n", "seed", "then")}
    for key in raw:
        if key != "action" and key not in used[action] and any(key in keys for keys in used.values()):
            raise ctx.fail(f"{where}.{key}", f"not used by action {action!r} (it takes: "
                                             f"{', '.join(used[action])})")
    if action in ("remove", "flip"):
        _check_keys(raw, ("action", "ranking", "top_n"), where, ctx)
        ranking = _path(_req(raw, "ranking", where, ctx), f"{where}.ranking", ctx, want_dir=False)
        top_n = _positive_int(_req(raw, "top_n", where, ctx), f"{where}.top_n", ctx)
        n_ranked = _ranked_count(ranking, ctx)
        if top_n > n_ranked:
            raise ctx.fail(f"{where}.top_n", f"{top_n} exceeds the {n_ranked} ids in the ranking")
        files[f"{where}.ranking"] = file_sha256(ranking)
        return DataMitigation(action=action, ranking=ranking, top_n=top_n)
    if action == "exclude":
        _check_keys(raw, ("action", "models", "side"), where, ctx)
        models = _req(raw, "models", where, ctx)
        if not isinstance(models, list) or not models:
            raise ctx.fail(f"{where}.models", "must be a non-empty list of source model names")
        names = tuple(_string(m, f"{where}.models[{i}]", ctx) for i, m in enumerate(models))
        if len(set(names)) != len(names):
            raise ctx.fail(f"{where}.models", "lists a model twice")
        side = _choice(raw.get("side", "either"), EXCLUDE_SIDES, f"{where}.side", ctx)
        return DataMitigation(action=action, models=names, side=side)
    _check_keys(raw, ("action", "top_n", "seed", "then"), where, ctx)
    top_n = _positive_int(_req(raw, "top_n", where, ctx), f"{where}.top_n", ctx)
    seed = _req(raw, "seed", where, ctx)
    if not _is_int(seed) or seed < 0:
        raise ctx.fail(f"{where}.seed", f"must be an integer >= 0, got {seed!r}")
    then = _choice(_req(raw, "then", where, ctx), ("remove", "flip"), f"{where}.then", ctx)
    return DataMitigation(action=action, top_n=top_n, seed=int(seed), then=then)


def _ranked_count(path: Path, ctx: _Ctx) -> int:
    from organism.data.ranking import read_ranking

    try:
        ranking = read_ranking(path)
    except InputError as exc:
        named = f"{exc.field}: " if exc.field and exc.field != "line" else ""
        raise ctx.fail("data.ranking", f"{path.name}: {named}{exc.reason}") from exc
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise ctx.fail("data.ranking", f"{path.name}: {type(exc).__name__}: {exc}") from exc
    n = len(ranking.ids)
    if n == 0:
        raise ctx.fail("data.ranking", f"{path.name} ranks no ids")
    return n


# ----------------------------------------------------------------------------------------------------------------
# profile facts (checked only when the profile knows them)


def _lookup_profile(name: str, ctx: _Ctx) -> Any:
    try:
        from organism.models.profiles import get_profile
    except ImportError:  # profiles not available in this build: skip the profile-specific checks
        return None
    try:
        return get_profile(name)
    except InputError as exc:
        raise ctx.fail("profile", exc.reason) from exc


def _profile_get(profile: Any, name: str) -> Any:
    if profile is None:
        return None
    if isinstance(profile, Mapping):
        return profile.get(name)
    return getattr(profile, name, None)


def _profile_int(profile: Any, names: tuple[str, ...]) -> int | None:
    for name in names:
        value = _profile_get(profile, name)
        if _is_int(value) and value > 0:
            return int(value)
    return None


_BASE_ATTRS = ("base", "m0", "m1", "base_model", "base_model_id", "base_models")


def _profile_bases(profile: Any) -> set[str]:
    """Every model name the profile would accept as an adapter's base: its base/M0/M1 refs (strings or objects
    with .repo_id) and "<base>+m0" / "<base>+m1", the names the smol loader gives its stacked stages."""
    out: set[str] = set()

    def add(value: Any) -> None:
        if isinstance(value, str) and value:
            out.add(value)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for v in value:
                add(v)
        elif value is not None:
            add(_profile_get(value, "repo_id"))

    for attr in _BASE_ATTRS:
        add(_profile_get(profile, attr))
    base = _profile_get(profile, "base")
    base_id = base if isinstance(base, str) else _profile_get(base, "repo_id")
    if isinstance(base_id, str) and base_id:
        out.update({f"{base_id}+m0", f"{base_id}+m1"})
    return out


# ----------------------------------------------------------------------------------------------------------------
# small validators


def _tname(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "nothing (null)"}.get(type(value), type(value).__name__)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _mapping(raw: Any, dotted: str, ctx: _Ctx) -> None:
    if not isinstance(raw, Mapping):
        raise ctx.fail(dotted, f"must be a mapping, got {_tname(raw)}")


def _check_keys(raw: Mapping, allowed: tuple[str, ...], prefix: str, ctx: _Ctx) -> None:
    for key in raw:
        if key not in allowed:
            dotted = f"{prefix}.{key}" if prefix else str(key)
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(allowed)})"
            raise ctx.fail(dotted, f"unknown key{hint}")


def _req(raw: Mapping, key: str, prefix: str, ctx: _Ctx) -> Any:
    if key not in raw or raw[key] is None:
        raise ctx.fail(f"{prefix}.{key}" if prefix else key, "missing")
    return raw[key]


def _string(value: Any, dotted: str, ctx: _Ctx, *, empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise ctx.fail(dotted, f"must be a string, got {_tname(value)}")
    if not empty_ok and not value.strip():
        raise ctx.fail(dotted, "must not be empty")
    return value


def _choice(value: Any, choices: tuple[str, ...], dotted: str, ctx: _Ctx) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ctx.fail(dotted, f"must be one of {', '.join(choices)}; got {value!r}")
    return value


def _number(value: Any, dotted: str, ctx: _Ctx) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ctx.fail(dotted, f"must be a number, got {_tname(value)}")
    if not math.isfinite(value):
        raise ctx.fail(dotted, "must be finite")
    return float(value)


def _nonneg(value: Any, dotted: str, ctx: _Ctx) -> float:
    number = _number(value, dotted, ctx)
    if number < 0:
        raise ctx.fail(dotted, f"must be >= 0, got {value}")
    return number


def _positive_int(value: Any, dotted: str, ctx: _Ctx) -> int:
    if not _is_int(value) or value < 1:
        raise ctx.fail(dotted, f"must be an integer >= 1, got {value!r}")
    return int(value)


def _path(value: Any, dotted: str, ctx: _Ctx, *, want_dir: bool) -> Path:
    text = _string(value, dotted, ctx)
    path = Path(os.path.expanduser(text))
    if not path.is_absolute():
        path = ctx.base_dir / path
    path = path.resolve()
    if not path.exists():
        raise ctx.fail(dotted, f"{path} does not exist")
    if want_dir and not path.is_dir():
        raise ctx.fail(dotted, f"{path} is not a folder")
    if not want_dir and not path.is_file():
        raise ctx.fail(dotted, f"{path} is not a file")
    return path


# ----------------------------------------------------------------------------------------------------------------
# listing


def ls_rows() -> list[dict]:
    """Mitigation kinds for `organism-bench ls --mitigations`."""
    blocks = {"none": "", "model": "model: {path | repo_id + revision, adapter}",
              "inference": "inference: {steering: {vector, layer, mode, scale, positions} | system_prompt}",
              "data": "data: {action: remove|flip, ranking, top_n} | {action: exclude, models, side} | "
                      "{action: random, top_n, seed, then}"}
    return [{"kind": k, "block": blocks[k], "what": _KIND_HELP[k]} for k in KINDS]
