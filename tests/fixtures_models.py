"""Tiny stand-ins for the real checkpoints, built in the real layouts, so loaders run their real code paths.

- `build_tiny_olmo2` (from `organism.models.tiny`): a random OLMo 2 scaled down from the real 7B config.
- `install_in_hub_cache`: puts a model folder into a Hugging Face cache layout
  (models--ORG--NAME/{blobs,snapshots/<sha>,refs/main}) so `snapshot_download(local_files_only=True)` finds it.
- `build_lora`: a PEFT LoRA adapter for any tiny model (`build_tiny_llama` gives one of another family).
- `smol_session` (session scope): the real SmolLM2 GGUF converted once into a session cache dir; tests that need
  the smol organism take it and point ORGANISM_BENCH_CACHE at `smol_session.cache_dir`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from organism.models.tiny import (  # noqa: F401 - the stand-ins live in the package; tests import them from here
    OLMO2_7B_CONFIG, SPECIAL_TOKENS, TULU_CHAT_TEMPLATE, build_tiny_olmo2, build_tiny_tokenizer, tiny_olmo2_config,
)


def install_in_hub_cache(hub_cache: Path, repo_id: str, commit: str, src: Path, *, ref: str = "main") -> Path:
    """Copy `src` files into HF_HUB_CACHE as blobs + snapshot symlinks, and point refs/<ref> at `commit`."""
    org, name = repo_id.split("/")
    repo_dir = Path(hub_cache) / f"models--{org}--{name}"
    snapshot = repo_dir / "snapshots" / commit
    blobs = repo_dir / "blobs"
    snapshot.mkdir(parents=True, exist_ok=True)
    blobs.mkdir(parents=True, exist_ok=True)
    for file in sorted(src.iterdir()):
        if not file.is_file():
            continue
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        blob = blobs / digest
        if not blob.exists():
            shutil.copyfile(file, blob)
        link = snapshot / file.name
        if link.exists() or link.is_symlink():
            link.unlink()
        os.symlink(os.path.relpath(blob, snapshot), link)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / ref).write_text(commit, encoding="utf-8")
    return snapshot


def build_tiny_llama(hidden_size: int = 32) -> Any:
    """A random model of another family and width, to build adapters that must not fit OLMo 2."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=128, hidden_size=hidden_size, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4)
    return LlamaForCausalLM(config).eval()


def build_lora(model: Any, dest: Path, *, base_name: str | None, r: int = 4, nonzero: bool = True) -> Path:
    """Save a LoRA for `model` to `dest`; `base_name` is what adapter_config.json records as its base."""
    import torch
    from peft import LoraConfig, get_peft_model

    model.name_or_path = base_name
    torch.manual_seed(2)
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=not nonzero))
    peft_model.save_pretrained(str(dest), save_embedding_layers=False)
    cfg_file = dest / "adapter_config.json"
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    cfg["base_model_name_or_path"] = base_name
    cfg_file.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    peft_model.unload()  # leave `model` as it was
    return dest


# ----------------------------------------------------------------------------------------------- real smol model
@dataclass
class SmolSession:
    cache_dir: Path
    copy_dir: Path
    gguf_model: Any
    gguf_tokenizer: Any


def build_smol_session(cache_root: Path) -> SmolSession:
    """Convert the real GGUF once into `cache_root` and keep the GGUF-loaded model for comparisons."""
    from organism.models import smol
    from organism.models.loading import load_organism
    from benchcore.paths import ENV_VAR

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_VAR, str(cache_root))
        model, tokenizer = smol.load_gguf()
        copy = smol.ensure_copy(loaded=(model, tokenizer))
        load_organism("smol", "base", dtype="float32")
    return SmolSession(cache_dir=Path(cache_root), copy_dir=copy, gguf_model=model, gguf_tokenizer=tokenizer)


@pytest.fixture(scope="session")
def smol_session(_isolated_cache: Path) -> SmolSession:
    """One conversion per test session, into the session cache every other test also uses."""
    return build_smol_session(_isolated_cache)
