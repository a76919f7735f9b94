"""Cells and their step equations against torch's cells and autograd."""

import pytest
import torch

from lstmvision.nn import GRUCell, GRUEquations, LSTMCell, LSTMEquations, RNNCell, RNNEquations
from lstmvision.nn.cells import tanh

INPUT, HIDDEN, BATCH = 5, 7, 4

# (our cell, torch cell, extra constructor kwargs, number of states)
CELLS = {
    "lstm": (LSTMCell, torch.nn.LSTMCell, {}, 2),
    "gru": (GRUCell, torch.nn.GRUCell, {}, 1),
    "rnn-tanh": (RNNCell, torch.nn.RNNCell, {"nonlinearity": "tanh"}, 1),
    "rnn-relu": (RNNCell, torch.nn.RNNCell, {"nonlinearity": "relu"}, 1),
}


def _pair(name, bias=True):
    ours_cls, torch_cls, kwargs, _ = CELLS[name]
    reference = torch_cls(INPUT, HIDDEN, bias=bias, **kwargs)
    ours = ours_cls(INPUT, HIDDEN, bias=bias, **kwargs)
    ours.load_state_dict(reference.state_dict())
    return ours, reference


def _loss_and_grads(cell, x, states):
    """Outputs and gradients of a fixed weighted sum of them w.r.t. x, the states, the
    parameters."""
    hx = states if states is None or len(states) == 2 else states[0]
    out = cell(x, hx)
    outs = out if isinstance(out, tuple) else (out,)
    weights = [torch.linspace(-1, 1, o.numel()).view_as(o) for o in outs]
    loss = sum((o * w).sum() for o, w in zip(outs, weights))
    leaves = [x, *(states or ()), *cell.parameters()]
    return outs, torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
def test_cell_matches_torch(name, bias, batched, with_state):
    torch.manual_seed(0)
    ours, reference = _pair(name, bias)
    lead = (BATCH,) if batched else ()
    x = torch.randn(*lead, INPUT, requires_grad=True)
    num_states = CELLS[name][3]
    hx = (
        tuple(torch.randn(*lead, HIDDEN, requires_grad=True) for _ in range(num_states))
        if with_state
        else None
    )
    our_out, our_grads = _loss_and_grads(ours, x, hx)
    ref_out, ref_grads = _loss_and_grads(reference, x, hx)
    for a, b in zip(our_out + our_grads, ref_out + ref_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", CELLS)
def test_cell_parameters_and_state_dict_both_ways(name):
    ours, reference = _pair(name)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in reference.named_parameters()]
    assert [p.shape for p in ours.parameters()] == [p.shape for p in reference.parameters()]
    fresh = type(reference)(INPUT, HIDDEN, **CELLS[name][2])
    fresh.load_state_dict(ours.state_dict())
    for a, b in zip(fresh.parameters(), ours.parameters()):
        assert torch.equal(a, b)
    bound = HIDDEN**-0.5
    assert all(p.abs().max() <= bound for p in CELLS[name][0](INPUT, HIDDEN).parameters())


EQUATIONS = {
    "lstm": LSTMEquations(),
    "gru": GRUEquations(),
    "rnn-tanh": RNNEquations("tanh"),
    "rnn-relu": RNNEquations("relu"),
}


@pytest.mark.parametrize("name", EQUATIONS)
def test_step_backward_is_the_derivative_of_step(name):
    """The hand-written derivative equations equal autograd's derivative of the step."""
    torch.manual_seed(1)
    equations = EQUATIONS[name]
    size = equations.num_gates * HIDDEN
    x_part, h_part = (
        torch.randn(BATCH, size, dtype=torch.double, requires_grad=True) for _ in range(2)
    )
    state = tuple(
        torch.randn(BATCH, HIDDEN, dtype=torch.double, requires_grad=True)
        for _ in range(equations.num_states)
    )
    new_state, cache = equations.step(x_part, h_part, state)
    d_new = tuple(torch.randn_like(s) for s in new_state)
    expected = torch.autograd.grad(new_state, (x_part, h_part, *state), d_new, allow_unused=True)
    with torch.no_grad():
        d_x_blocks, d_h_blocks, d_direct = equations.step_backward(d_new, cache)
    torch.testing.assert_close(torch.cat(d_x_blocks, dim=1), expected[0])
    torch.testing.assert_close(torch.cat(d_h_blocks, dim=1), expected[1])
    for got, want, s in zip(d_direct, expected[2:], state):
        zero = torch.zeros_like(s)  # None: the state has no path to the step other than h_part
        torch.testing.assert_close(zero if got is None else got, zero if want is None else want)


def test_tanh_identity():
    x = torch.linspace(-20, 20, 10001)
    torch.testing.assert_close(tanh(x), torch.tanh(x), atol=2e-7, rtol=0)


def test_invalid_nonlinearity():
    with pytest.raises(ValueError, match="tanh, relu"):
        RNNCell(3, 4, nonlinearity="sigmoid")


def test_lstm_docstring_flags_the_tanh_input_gate_mistake():
    assert "mistake" in LSTMEquations.__doc__ and "sigmoid" in LSTMEquations.__doc__
