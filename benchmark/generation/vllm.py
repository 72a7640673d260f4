"""vLLM backend: the same `generate()` and cache as the HF backend, for large runs on CUDA machines.

vLLM is optional and imported only when this backend is built. Per-(prompt, sample index) seeds come from
`benchmark.generation.engine.sample_seed` and are passed per request, so batching does not change which sample a row
draws; vLLM's own sampler is used, so its samples differ from the HF backend's and the engine name keeps their
cache entries apart. Steering hooks need the HF backend. Knowledge questions are scored on the same engine from
its prompt log-probabilities, so a vLLM run never loads the model a second time through transformers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from benchmark.generation.cache import GenerationCache
from benchmark.generation.engine import CachedBackend, GenConfig, _Unit, sample_seed
from benchcore.errors import InputError


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise InputError("backend", "vllm", "not installed: pip install 'organism-bench[vllm]' on a CUDA "
                                            "machine") from exc
    return vllm


class VLLMBackend(CachedBackend):
    """`model`: a Hub repo id or local folder; `lora_path`: an optional PEFT adapter served on top of it."""

    engine = "vllm"

    def __init__(self, model: str, identity: str, cache: GenerationCache | None = None,
                 system_prompt: str | None = None, *, revision: str | None = None, dtype: str = "bfloat16",
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 max_model_len: int | None = None, lora_path: str | None = None, llm: Any = None) -> None:
        super().__init__(identity, cache, system_prompt)
        vllm = import_vllm()
        self._vllm = vllm
        self.lora_path = lora_path
        if llm is None:
            kwargs: dict[str, Any] = {"model": model, "revision": revision, "dtype": dtype,
                                      "tensor_parallel_size": tensor_parallel_size,
                                      "gpu_memory_utilization": gpu_memory_utilization, "seed": 0}
            if max_model_len is not None:
                kwargs["max_model_len"] = max_model_len
            if lora_path is not None:
                kwargs["enable_lora"] = True
            llm = vllm.LLM(**kwargs)
        self.llm = llm
        self.tokenizer = llm.get_tokenizer()

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_length(self, text: str) -> int:
        return len(self._encode(text))

    def auto_batch_size(self, max_prompt_len: int, config: GenConfig) -> int:
        """vLLM schedules its own batches; ours is only how often finished work reaches the cache."""
        return 512

    def _lora(self) -> dict[str, Any]:
        if self.lora_path is None:
            return {}
        from vllm.lora.request import LoRARequest

        return {"lora_request": LoRARequest("adapter", 1, self.lora_path)}

    def token_logprobs(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]:
        """benchmark.evaluation.capability.TokenLogprobs from a prefill: prompt_logprobs holds, at every position after the
        first, a dict that always includes the prompt's own token (besides the top-1 asked for)."""
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)
        outputs = self.llm.generate([{"prompt_token_ids": list(t)} for t in sequences], sampling_params=params,
                                    use_tqdm=False, **self._lora())
        out = []
        for toks, result in zip(sequences, outputs, strict=True):
            entries = result.prompt_logprobs[1:]
            out.append([float(getattr(e[t], "logprob", e[t])) for t, e in zip(list(toks)[1:], entries, strict=True)])
        return out

    def close(self) -> None:
        """Free the GPU for the next engine (a run builds one per model: the mitigation, then M0 and M1)."""
        import gc

        import torch

        self.llm = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def generate_batch(self, units: list[_Unit], config: GenConfig) -> list[dict[str, Any]]:
        params = []
        for u in units:
            params.append(self._vllm.SamplingParams(
                n=1, max_tokens=config.max_new_tokens, temperature=float(config.temperature),
                top_p=float(config.top_p) if not config.greedy else 1.0,
                seed=None if config.greedy else sample_seed(u.seed, u.prompt_sha, u.sample_index),
                skip_special_tokens=True))
        prompts = [{"prompt_token_ids": self._encode(u.text)} for u in units]  # no second BOS
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False, **self._lora())
        out = []
        for result in outputs:
            completion = result.outputs[0]
            out.append({"response": completion.text, "n_tokens": len(completion.token_ids),
                        "finish_reason": "length" if completion.finish_reason == "length" else "stop"})
        return out
