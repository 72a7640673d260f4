"""Steering hooks: identity at scale 0, project_out removes the component, tensor and tuple layer outputs,
the "generated" position rule, and hooks removed on exit even on error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchcore.errors import InputError
from organism.models.steering import decoder_layers, steer

HIDDEN = 32


def tiny_llama(layers: int = 3):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return LlamaForCausalLM(cfg).eval()


def capture_input_of(module: nn.Module, store: list):
    """What the NEXT layer receives = the steered output of the hooked layer."""
    def pre_hook(_mod, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        store.append(hidden.detach().clone())
    return module.register_forward_pre_hook(pre_hook, with_kwargs=True)


@pytest.fixture(scope="module")
def model():
    return tiny_llama()


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(1))


def test_decoder_layers_found_and_missing(model):
    assert len(decoder_layers(model)) == 3
    with pytest.raises(InputError, match="layers"):
        decoder_layers(nn.Sequential(nn.Linear(2, 2)))


def test_add_with_scale_zero_is_identity(model, ids):
    v = torch.randn(HIDDEN)
    with torch.no_grad():
        ref = model(ids).logits
        with steer(model, v, 1, scale=0.0, positions="all"):
            out = model(ids).logits
    assert torch.equal(ref, out)


def test_add_changes_output_and_hook_removed_on_exit(model, ids):
    v = torch.randn(HIDDEN) * 5
    layers = decoder_layers(model)
    with torch.no_grad():
        ref = model(ids).logits
        with steer(model, v, 1, scale=2.0, positions="all"):
            assert len(layers[1]._forward_hooks) == 1
            out = model(ids).logits
        assert len(layers[1]._forward_hooks) == 0
        again = model(ids).logits
    assert not torch.allclose(ref, out)
    assert torch.equal(ref, again)


def test_add_is_exactly_scale_times_vector(model, ids):
    v = torch.randn(HIDDEN)
    layers = decoder_layers(model)
    plain, steered = [], []
    with torch.no_grad():
        h = capture_input_of(layers[2], plain)
        model(ids)
        with steer(model, v, 1, scale=3.0, positions="all"):
            model(ids)
        h.remove()
    steered = plain[1]
    assert torch.allclose(steered - plain[0], (3.0 * v).expand_as(steered), atol=1e-5)


def test_project_out_removes_the_component(model, ids):
    v = torch.randn(HIDDEN)
    u = v / v.norm()
    layers = decoder_layers(model)
    seen: list = []
    with torch.no_grad():
        h = capture_input_of(layers[1], seen)
        model(ids)
        with steer(model, v, 0, scale=1.0, mode="project_out", positions="all"):
            model(ids)
        h.remove()
    before, after = seen
    assert (before @ u).abs().max() > 1e-2  # there was a component to remove
    assert (after @ u).abs().max() < 1e-4
    # the orthogonal part is untouched
    assert torch.allclose(after, before - (before @ u).unsqueeze(-1) * u, atol=1e-5)


def test_hooks_removed_on_error(model, ids):
    layers = decoder_layers(model)
    with pytest.raises(RuntimeError, match="boom"):
        with steer(model, torch.randn(HIDDEN), 0, scale=1.0):
            raise RuntimeError("boom")
    assert all(len(layer._forward_hooks) == 0 for layer in layers)


class _TensorLayer(nn.Module):
    def forward(self, x):
        return x * 1.0


class _TupleLayer(nn.Module):
    def forward(self, x):
        return (x * 1.0, "extra")


class _Stub(nn.Module):
    def __init__(self, layer: nn.Module):
        super().__init__()
        self.model = nn.Module()
        self.model.layers = nn.ModuleList([layer])

    def forward(self, x):
        return self.model.layers[0](x)


@pytest.mark.parametrize("layer_cls", [_TensorLayer, _TupleLayer])
def test_tensor_and_tuple_outputs(layer_cls):
    stub = _Stub(layer_cls())
    x = torch.zeros(2, 5, 4)
    v = torch.tensor([1.0, 2.0, 3.0, 4.0])
    with steer(stub, v, 0, scale=0.5, positions="all"):
        out = stub(x)
    hidden = out if isinstance(out, torch.Tensor) else out[0]
    if isinstance(out, tuple):
        assert out[1] == "extra"
    assert torch.allclose(hidden, (0.5 * v).expand(2, 5, 4))
    # mode project_out on a tuple output
    x = torch.randn(2, 5, 4)
    with steer(stub, v, 0, mode="project_out", positions="all"):
        out = stub(x)
    hidden = out if isinstance(out, torch.Tensor) else out[0]
    assert (hidden @ (v / v.norm())).abs().max() < 1e-5


def test_generated_positions_rule():
    """Prefill: only the last prompt position; one-token decode steps: steered; a new prefill restarts."""
    stub = _Stub(_TupleLayer())
    v = torch.ones(4)
    with steer(stub, v, 0, scale=1.0, positions="generated"):
        prefill = stub(torch.zeros(1, 6, 4))[0]
        step1 = stub(torch.zeros(1, 1, 4))[0]
        step2 = stub(torch.zeros(1, 1, 4))[0]
        new_prefill = stub(torch.zeros(1, 3, 4))[0]
    assert torch.equal(prefill[0, :5], torch.zeros(5, 4))
    assert torch.equal(prefill[0, 5], torch.ones(4))
    assert torch.equal(step1, torch.ones(1, 1, 4)) and torch.equal(step2, torch.ones(1, 1, 4))
    assert torch.equal(new_prefill[0, :2], torch.zeros(2, 4)) and torch.equal(new_prefill[0, 2], torch.ones(4))


def test_generated_rule_during_cached_decoding(model):
    """With a KV cache the prompt's representations are unchanged; steering starts at the last prompt token."""
    ids = torch.randint(0, 64, (1, 6), generator=torch.Generator().manual_seed(3))
    v = torch.randn(HIDDEN) * 3
    layers = decoder_layers(model)
    seen: list = []
    with torch.no_grad():
        h = capture_input_of(layers[2], seen)
        model(ids)
        with steer(model, v, 1, scale=1.0, positions="generated"):
            model(ids)
        h.remove()
    plain, steered = seen
    assert torch.allclose(plain[0, :5], steered[0, :5])
    assert torch.allclose(steered[0, 5] - plain[0, 5], v, atol=1e-5)


def test_bad_arguments(model):
    with pytest.raises(InputError, match="layer"):
        with steer(model, torch.randn(HIDDEN), 3):
            pass
    with pytest.raises(InputError, match="hidden size"):
        with steer(model, torch.randn(HIDDEN + 1), 0):
            pass
    with pytest.raises(InputError, match="mode"):
        with steer(model, torch.randn(HIDDEN), 0, mode="subtract"):
            pass
    with pytest.raises(InputError, match="zero vector"):
        with steer(model, torch.zeros(HIDDEN), 0, mode="project_out"):
            pass
    assert all(len(layer._forward_hooks) == 0 for layer in decoder_layers(model))
