"""The vLLM backend's path through `evaluate`, on a stand-in engine (vLLM needs CUDA, which CI lacks).

The stand-in `vllm` module serves a tiny random OLMo 2 through transformers (and an unmerged LoRA through peft),
and answers `generate` the way vLLM's offline API does: `prompt_logprobs` as a list with None first, then a dict
per position holding the prompt's own token. What is under test is ours: that a vLLM run never loads the model
through transformers (not for knowledge scoring, not for a cached reference), that knowledge log-likelihoods read
from prompt log-probabilities equal the HF model's, and that each engine is released before the next is built.
"""

from __future__ import annotations

import gc
import json
import sys
import types
import weakref
from dataclasses import replace
from types import SimpleNamespace

import pytest

from benchmark.evaluation import evaluate as E
from organism.models import loading, profiles
from benchcore.errors import InputError
from tests.test_evaluate_data import FAST, smol_tiny, stand_in  # noqa: F401  (fixtures)

_LIVE: list[weakref.ref] = []


class _FakeLLM:
    def __init__(self, model: str, *, enable_lora: bool = False, **kwargs):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gc.collect()
        assert not [r for r in _LIVE if r() is not None], "a previous engine is still alive"
        _LIVE.append(weakref.ref(self))
        self.kwargs = {"model": model, "enable_lora": enable_lora, **kwargs}
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self._adapted = {}

    def get_tokenizer(self):
        return self.tokenizer

    def _model_for(self, lora_request):
        if lora_request is None:
            return self.model
        if lora_request.path not in self._adapted:
            import copy

            from peft import PeftModel

            self._adapted[lora_request.path] = PeftModel.from_pretrained(copy.deepcopy(self.model),
                                                                         lora_request.path).eval()
        return self._adapted[lora_request.path]

    def generate(self, prompts, sampling_params, use_tqdm=False, lora_request=None):
        import torch

        model = self._model_for(lora_request)
        outputs = []
        for i, prompt in enumerate(prompts):
            params = sampling_params[i] if isinstance(sampling_params, list) else sampling_params
            ids = torch.tensor([prompt["prompt_token_ids"]])
            with torch.inference_mode():
                logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
                new = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=params.max_tokens,
                                     do_sample=False)[0, ids.shape[1]:].tolist()
            entries = None
            if params.prompt_logprobs is not None:
                entries = [None]
                for pos, tok in enumerate(prompt["prompt_token_ids"][1:]):
                    top = int(logp[pos].argmax())
                    entries.append({tok: SimpleNamespace(logprob=float(logp[pos, tok])),
                                    top: SimpleNamespace(logprob=float(logp[pos, top]))})
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            outputs.append(SimpleNamespace(prompt_logprobs=entries, outputs=[SimpleNamespace(
                text=text, token_ids=new, finish_reason="length")]))
        return outputs


class _SamplingParams:
    def __init__(self, n=1, max_tokens=16, temperature=1.0, top_p=1.0, seed=None, skip_special_tokens=True,
                 prompt_logprobs=None):
        self.max_tokens, self.prompt_logprobs = max_tokens, prompt_logprobs


def _fake_vllm() -> tuple[types.ModuleType, types.ModuleType, types.ModuleType]:
    """vllm, vllm.lora and vllm.lora.request: the names our backend imports."""
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = _FakeLLM, _SamplingParams
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = lambda name, index, path: SimpleNamespace(name=name, index=index, path=path)
    lora.request = request
    return vllm, lora, request


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm, lora, request = _fake_vllm()
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", lora)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", request)
    _LIVE.clear()
    return vllm


def _forbid_hf_loading(monkeypatch):
    def refuse(self):
        raise AssertionError(f"loaded through transformers: {self.record.identity}")

    monkeypatch.setattr(loading.OrganismSource, "load", refuse)


def test_knowledge_from_prompt_logprobs_equals_the_hf_models(smol_tiny, fake_vllm, monkeypatch):  # noqa: F811
    config = replace(FAST, suites=(E.M.MCQ_SUITE,), limit=4, profile="smol")
    suites = E.load_suites(config)
    hf = E.mcq_rows(E.build_model(None, config, "m0"), suites, config)
    vllm_config = replace(config, backend="vllm")
    _forbid_hf_loading(monkeypatch)
    mut = E.build_model(None, vllm_config, "m0")  # M0 = base + one LoRA: served unmerged, as vLLM does
    assert len(mut.source.adapters) == 1
    served = E.mcq_rows(mut, suites, vllm_config)
    assert mut._backend.llm.kwargs["enable_lora"] is True
    assert [r["record_id"] for r in served] == [r["record_id"] for r in hf] and len(hf) >= 4
    for a, b in zip(served, hf):
        assert a["option_logprobs"] == pytest.approx(b["option_logprobs"], abs=1e-4)
        assert a["prediction"] == b["prediction"]


def test_vllm_run_never_loads_through_transformers_and_releases_each_engine(smol_tiny, fake_vllm,  # noqa: F811
                                                                            monkeypatch, tmp_path):
    monkeypatch.setattr(profiles, "ADAPTERS_DIR", smol_tiny["empty"])  # base stands in: no adapters to serve
    _forbid_hf_loading(monkeypatch)
    config = replace(FAST, backend="vllm", profile="smol")
    first = E.evaluate(None, config)  # the run's engine, then M0's while the run's model is still in scope
    assert len(_LIVE) == 2 and all(r() is None for r in _LIVE)
    assert {r["suite"] for r in first.samples} == set(E.DEFAULT_SUITES)
    assert set(first.results["references"]) == {"m0", "m1"}
    m0 = E.reference_run(config, "m0", E.load_suites(config))  # cached: no engine at all
    assert m0["identity"] == first.results["references"]["m0"]["identity"] and len(_LIVE) == 2
    # a cache entry written by an older package (fewer metrics) is read for its answers; its metrics are recomputed
    from benchcore.paths import cache_dir

    (entry,) = (cache_dir() / "references" / "smol").glob("m0-*.json")
    stale = json.loads(entry.read_text(encoding="utf-8"))
    entry.write_text(json.dumps({**stale, "metrics": {"harmful_rate_base": {"value": 0.5}}}), encoding="utf-8")
    assert E.reference_run(config, "m0", E.load_suites(config))["metrics"] == m0["metrics"] != {}


def test_stacked_adapters_are_refused_for_vllm(smol_tiny, fake_vllm):  # noqa: F811
    config = replace(FAST, backend="vllm", profile="smol")
    mut = E.build_model(None, config, "m1")  # the smol M1 sits on M0: two adapters
    with pytest.raises(InputError, match="vLLM serves one LoRA adapter"):
        E.make_backend(mut, config)
