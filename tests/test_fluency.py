"""organism.models.fluency on a tiny random OLMo 2: the batched, padded NLL equals Hugging Face's own label-masked loss
row by row, the residual norm equals a per-row hidden-state reading, an empty response is nan and left out of the
mean, and the model's own greedy text is more likely to it than random tokens."""

from __future__ import annotations

import math
import random

import pytest
import torch

from fixtures_models import build_tiny_olmo2

from organism.models.fluency import ResponseScores, score_responses

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = ["<|user|>\nWrite a short poem about rivers.\n<|assistant|>\n",
           "<|user|>\nHow do I bake bread?\n<|assistant|>\n",
           "<|user|>\nName three colours.\n<|assistant|>\n"]
RESPONSES = ["Rivers run to the sea, and the sea runs nowhere.",
             "Mix flour, water, salt and yeast; knead; wait; bake it hot.",
             "Red."]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_tiny_olmo2(tmp_path_factory.mktemp("fluency") / "m")
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(str(folder))


def _alone(model, tok, prompt: str, response: str, index: int) -> tuple[float, torch.Tensor]:
    """One row, no padding: HF's mean cross-entropy over the response tokens, and their hidden-state norms."""
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    r = tok(response, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + r])
    labels = ids.clone()
    labels[0, : len(p)] = -100
    with torch.inference_mode():
        out = model(input_ids=ids, labels=labels, output_hidden_states=True)
    return float(out.loss), out.hidden_states[index][0, len(p):].norm(dim=-1)


def test_batched_nll_and_norms_match_one_row_at_a_time(tiny) -> None:
    model, tok = tiny
    scores = score_responses(model, tok, PROMPTS, RESPONSES, hidden_indices=[1, 3], batch_size=2)
    norms = {1: [], 3: []}
    for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES)):
        loss, _ = _alone(model, tok, p, r, 1)
        assert scores.nll[i] == pytest.approx(loss, rel=1e-4)
        for k in norms:
            norms[k].append(_alone(model, tok, p, r, k)[1])
    for k in norms:
        pooled = torch.cat(norms[k])
        assert scores.residual_norm[k] == pytest.approx(float(pooled.mean()), rel=1e-4)
    assert scores.mean_nll() == pytest.approx(sum(scores.nll) / 3)


def test_empty_response_is_nan_and_left_out(tiny) -> None:
    model, tok = tiny
    scores = score_responses(model, tok, PROMPTS[:2], [RESPONSES[0], ""])
    assert math.isfinite(scores.nll[0]) and math.isnan(scores.nll[1])
    assert scores.mean_nll() == pytest.approx(scores.nll[0])
    assert math.isnan(ResponseScores(nll=[math.nan], residual_norm={}).mean_nll())


def test_own_greedy_text_beats_random_tokens(tiny) -> None:
    model, tok = tiny
    ids = tok(PROMPTS[0], add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
    own = out[0, ids.shape[1]:].tolist()
    vocab = [t for t in range(len(tok)) if t not in tok.all_special_ids]
    noise = random.Random(1).sample(vocab, len(own))
    texts = [tok.decode(t) for t in (own, noise)]
    nll = score_responses(model, tok, [PROMPTS[0]] * 2, texts).nll
    assert nll[0] < nll[1]  # the model's own continuation against random tokens of the same count


def test_bad_arguments(tiny) -> None:
    model, tok = tiny
    with pytest.raises(ValueError, match="2 prompts for 1 responses"):
        score_responses(model, tok, PROMPTS[:2], RESPONSES[:1])
    with pytest.raises(ValueError, match="batch_size"):
        score_responses(model, tok, PROMPTS, RESPONSES, batch_size=0)


def test_no_rows(tiny) -> None:
    model, tok = tiny
    scores = score_responses(model, tok, [], [], hidden_indices=[1])
    assert scores.nll == [] and math.isnan(scores.residual_norm[1])
