"""Layers against torch's: outputs, final states and gradients for every configuration."""

import itertools

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lstmvision.nn import GRU, IMPLEMENTATIONS, LSTM, RNN, RowLSTM, recurrent_fast

STEPS, BATCH, INPUT, HIDDEN = 5, 4, 3, 6
LENGTHS = [3, 5, 1, 4]  # unsorted, max = STEPS

# (our layer, torch layer, extra constructor kwargs)
LAYERS = {
    "lstm": (LSTM, torch.nn.LSTM, {}),
    "gru": (GRU, torch.nn.GRU, {}),
    "rnn-tanh": (RNN, torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn-relu": (RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
}


def _pair(name, implementation="equations", dtype=torch.float32, **kwargs):
    ours_cls, torch_cls, extra = LAYERS[name]
    reference = torch_cls(INPUT, HIDDEN, **extra, **kwargs, dtype=dtype)
    ours = ours_cls(INPUT, HIDDEN, **extra, **kwargs, dtype=dtype, implementation=implementation)
    ours.load_state_dict(reference.state_dict())
    return ours, reference


def _initial_state(name, layers, directions, batch=BATCH, dtype=torch.float32):
    states = [
        torch.randn(layers * directions, batch, HIDDEN, dtype=dtype, requires_grad=True)
        for _ in range(2 if name == "lstm" else 1)
    ]
    return states, (tuple(states) if name == "lstm" else states[0])


def _run(module, x, hx, kind, batch_first, lengths):
    """Runs ``module`` on ``x`` as a full batch, a padded batch with lengths, or packed; torch
    modules get the packed batch for ``lengths`` (what ours must equal)."""
    ours = hasattr(module, "implementation")
    if kind == "full":
        output, state = module(x, hx)
    elif kind == "lengths" and ours:
        output, state = module(x, hx, lengths=lengths)
    else:
        packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
        output, state = module(packed, hx)
        assert isinstance(output, PackedSequence)
        if kind == "lengths":
            output, _ = pad_packed_sequence(output, batch_first=batch_first, total_length=STEPS)
        else:
            assert torch.equal(output.sorted_indices, packed.sorted_indices)
            output = output.data
    return output, (state if isinstance(state, tuple) else (state,))


def _outputs_and_grads(module, x, states, hx, kind, batch_first, lengths=LENGTHS):
    output, state = _run(module, x, hx, kind, batch_first, lengths)
    results = (output, *state)
    gen = torch.Generator().manual_seed(3)
    loss = sum((r * torch.randn(r.shape, generator=gen, dtype=r.dtype)).sum() for r in results)
    return results, torch.autograd.grad(loss, [x, *states, *module.parameters()])


CONFIGS = [
    config
    for config in itertools.product(
        LAYERS,
        ["equations", "fast", "fused"],
        [False, True],
        [1, 2],
        [False, True],
        [False, True],
        [True, False],
        ["full", "lengths", "packed"],
    )
    # batch_first is layout handled in Python, shared by the equations and fast paths: the fast
    # kernels are checked on the other axes (keeps the fast tier short)
    if not (config[1] == "fast" and config[4])
]


@pytest.mark.parametrize(
    "name, implementation, bidirectional, layers, batch_first, with_state, bias, kind", CONFIGS
)
def test_layer_matches_torch(
    name, implementation, bidirectional, layers, batch_first, with_state, bias, kind
):
    torch.manual_seed(0)
    kwargs = {
        "num_layers": layers,
        "bidirectional": bidirectional,
        "batch_first": batch_first,
        "bias": bias,
    }
    ours, reference = _pair(name, implementation, **kwargs)
    x = torch.randn(
        (BATCH, STEPS, INPUT) if batch_first else (STEPS, BATCH, INPUT), requires_grad=True
    )
    states, hx = _initial_state(name, layers, 1 + bidirectional) if with_state else ([], None)
    our_results, our_grads = _outputs_and_grads(ours, x, states, hx, kind, batch_first)
    ref_results, ref_grads = _outputs_and_grads(reference, x, states, hx, kind, batch_first)
    for a, b in zip(our_results + our_grads, ref_results + ref_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", LAYERS)
def test_lengths_shorter_than_padding_and_zero_outputs(name):
    """Outputs past each length are zero, even when the padding is longer than every sequence."""
    torch.manual_seed(0)
    ours, reference = _pair(name, bidirectional=True)
    x = torch.randn(STEPS + 2, BATCH, INPUT)
    output, state = ours(x, lengths=torch.tensor(LENGTHS))
    ref_output, ref_state = reference(pack_padded_sequence(x, LENGTHS, enforce_sorted=False))
    ref_output, _ = pad_packed_sequence(ref_output, total_length=STEPS + 2)
    torch.testing.assert_close(output, ref_output, atol=1e-5, rtol=1e-5)
    for b, length in enumerate(LENGTHS):
        assert output[length:, b].abs().max() == 0
    for a, b in zip(
        state if isinstance(state, tuple) else (state,),
        ref_state if isinstance(ref_state, tuple) else (ref_state,),
    ):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("with_state", [False, True])
def test_unbatched_input(name, with_state):
    torch.manual_seed(0)
    ours, reference = _pair(name, num_layers=2, bidirectional=True)
    x = torch.randn(STEPS, INPUT)
    hx = None
    if with_state:
        states = [torch.randn(4, HIDDEN) for _ in range(2 if name == "lstm" else 1)]
        hx = tuple(states) if name == "lstm" else states[0]
    for a, b in zip(ours(x, hx), reference(x, hx)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


GRADCHECK = [
    ("lstm", {"num_layers": 2, "bidirectional": True}, "lengths"),
    ("gru", {"num_layers": 2, "bidirectional": True, "batch_first": True}, "lengths"),
    ("rnn-tanh", {"num_layers": 2, "bidirectional": True}, "packed"),
    ("lstm", {"bias": False}, "full"),
    ("gru", {}, "full"),
]


@pytest.mark.parametrize("implementation", ["equations", "fast"])
@pytest.mark.parametrize("name, kwargs, kind", GRADCHECK)
def test_gradcheck(name, kwargs, kind, implementation):
    """Finite differences in float64 agree with the hand-written backpropagation through time
    (the equations path's and the fast kernels'), with respect to the input, the initial state
    and every parameter."""
    torch.manual_seed(0)
    ours, _ = _pair(name, implementation, dtype=torch.double, **kwargs)
    batch_first = kwargs.get("batch_first", False)
    x = torch.randn(
        (BATCH, STEPS, INPUT) if batch_first else (STEPS, BATCH, INPUT),
        dtype=torch.double,
        requires_grad=True,
    )
    states, _ = _initial_state(name, ours.num_layers, 1 + ours.bidirectional, dtype=torch.double)
    names = [n for n, _ in ours.named_parameters()]

    def function(x, *tensors):
        initial, params = tensors[: len(states)], tensors[len(states) :]
        hx = tuple(initial) if name == "lstm" else initial[0]
        lengths = {"lengths": LENGTHS} if kind == "lengths" else {}
        inputs = (
            pack_padded_sequence(x, LENGTHS, batch_first, enforce_sorted=False)
            if kind == "packed"
            else x
        )
        output, state = torch.func.functional_call(
            ours, dict(zip(names, params)), (inputs, hx), lengths
        )
        output = output.data if kind == "packed" else output
        return (output, *(state if isinstance(state, tuple) else (state,)))

    assert torch.autograd.gradcheck(function, (x, *states, *ours.parameters()))


def test_dropout_only_between_layers_and_only_in_training():
    torch.manual_seed(0)
    ours, reference = _pair("lstm", num_layers=3, dropout=0.5)
    x = torch.randn(STEPS, BATCH, INPUT)
    ours.eval(), reference.eval()
    for a, b in zip(ours(x)[1], reference(x)[1]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours(x)[0], reference(x)[0], atol=1e-5, rtol=1e-5)
    ours.train()
    assert not torch.equal(ours(x)[0], ours(x)[0])


def test_dropout_one_drops_exactly_the_inputs_of_upper_layers():
    """With p = 1 every layer after the first reads zeros; the first layer and the last output
    are untouched."""
    torch.manual_seed(0)
    ours, _ = _pair("gru", num_layers=2, dropout=1.0)
    ours.train()
    x = torch.randn(STEPS, BATCH, INPUT)
    output, h_n = ours(x)
    first, second = (
        GRU(INPUT if layer == 0 else HIDDEN, HIDDEN, implementation="equations")
        for layer in range(2)
    )
    for layer, single in enumerate((first, second)):
        single.load_state_dict(
            {
                k.replace(f"_l{layer}", "_l0"): v
                for k, v in ours.state_dict().items()
                if f"_l{layer}" in k
            }
        )
    torch.testing.assert_close(h_n[0], first(x)[1][0])
    expected, expected_h = second(torch.zeros(STEPS, BATCH, HIDDEN))
    torch.testing.assert_close(output, expected)
    torch.testing.assert_close(h_n[1], expected_h[0])


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("training", [True, False])
def test_auto_picks_one_of_the_equal_paths(name, training):
    """``auto`` runs the fast path wherever it serves the call (CPU, float32/64, no autocast; the
    faster in what docs/bench.md measured; under autocast on a CPU without bfloat16 arithmetic),
    torch's kernel otherwise, and equals torch's."""
    torch.manual_seed(0)
    ours, reference = _pair(name, "auto", num_layers=2, bidirectional=True)
    x = torch.randn(STEPS, BATCH, INPUT)
    with torch.set_grad_enabled(training):
        path = ours._path(x)
        output, expected = ours(x)[0], reference(x)[0]
    assert path in ("fused", "fast")
    assert path == "fast"
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        # torch's kernel under autocast where the CPU computes bfloat16 (oneDNN's bfloat16 LSTM
        # exists only there), else ours in float32
        native = recurrent_fast.cpu_computes_bf16()
        assert ours._path(x) == ("fused" if native else "fast")
    with torch.set_grad_enabled(training):
        assert ours.double()._path(x.double()) == path


@pytest.mark.parametrize("name", LAYERS)
def test_parameters_init_and_state_dict_both_ways(name):
    ours, reference = _pair(name, num_layers=2, bidirectional=True)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [
        (n, p.shape) for n, p in reference.named_parameters()
    ]
    assert "weight_hh_l1_reverse" in dict(ours.named_parameters())
    fresh_ours, fresh_torch = _pair(name, num_layers=2, bidirectional=True)
    fresh_torch.load_state_dict(ours.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(fresh_torch.parameters(), ours.parameters()))
    bound = HIDDEN**-0.5
    assert all(0 < p.abs().max() <= bound for p in fresh_ours.parameters())


@pytest.mark.parametrize("bad", ["cudnn", "", None])
def test_invalid_implementation(bad):
    with pytest.raises(ValueError, match="'auto', 'equations', 'fast', 'fused'"):
        LSTM(3, 4, implementation=bad)
    layer = GRU(3, 4)
    with pytest.raises(ValueError, match="'auto', 'equations', 'fast', 'fused'"):
        layer.implementation = bad
    assert IMPLEMENTATIONS == ("auto", "equations", "fast", "fused")


def test_invalid_lengths():
    layer = LSTM(INPUT, HIDDEN, implementation="equations")
    x = torch.randn(STEPS, BATCH, INPUT)
    for lengths in ([1, 2, 3], [0, 1, 2, 3], [1, 2, 3, STEPS + 1]):
        with pytest.raises(ValueError, match="lengths"):
            layer(x, lengths=lengths)


def test_repr_shows_a_non_default_implementation():
    assert "implementation='equations'" in repr(
        RNN(3, 4, nonlinearity="relu", implementation="equations")
    )
    assert "implementation" not in repr(RNN(3, 4))


def test_set_forget_bias_opens_only_the_forget_gates_of_every_layer_and_direction():
    lstm = LSTM(3, 4, num_layers=2, bidirectional=True).set_forget_bias(1.0)
    names = [n for n, _ in lstm.named_parameters() if n.startswith("bias")]
    assert len(names) == 8  # ih and hh, 2 layers, 2 directions
    for name, param in lstm.named_parameters():
        if name.startswith("bias_ih"):
            assert torch.all(param[4:8] == 1.0) and not torch.all(param[:4] == 1.0)
        elif name.startswith("bias_hh"):
            assert torch.all(param[4:8] == 0.0) and not torch.all(param[8:] == 0.0)
    reader = RowLSTM(28, 28, reading="pixels", hidden_size=4, forget_bias=1.0, bidirectional=False)
    assert torch.all(reader.readers[0].bias_ih_l0[4:8] == 1.0)


def test_chrono_bias_spreads_memory_spans_over_the_sequence_length():
    lstm = LSTM(1, 64, bidirectional=True).set_chrono_bias(784, torch.Generator().manual_seed(0))
    for suffix in ("l0", "l0_reverse"):
        b_ih, b_hh = getattr(lstm, f"bias_ih_{suffix}"), getattr(lstm, f"bias_hh_{suffix}")
        forget = b_ih[64:128]
        assert torch.all(forget >= 0) and torch.all(forget <= torch.log(torch.tensor(783.0)))
        assert float(forget.max()) > 6.0  # spans up to hundreds of steps: σ(b_f) near 1
        assert torch.equal(b_ih[:64], -forget) and torch.all(b_hh[:128] == 0)
    reader = RowLSTM(28, 28, reading="rows", hidden_size=8, chrono=True, bidirectional=False)
    assert float(reader.readers[0].bias_ih_l0[8:16].max()) <= float(
        torch.log(torch.tensor(27.0))
    )  # 28 steps
