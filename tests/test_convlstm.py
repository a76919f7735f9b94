"""ConvLSTM (Shi 2015): shapes, gradients, equality with our LSTM on 1x1 maps, and the fast
path (``implementation="fast"``, :mod:`lstmvision.nn.convlstm_fast`) equal to the equations."""

import copy

import pytest
import torch
import torch.nn.functional as F

from lstmvision.nn import LSTM, ConvLSTM, ConvLSTMCell, convlstm_fast, recurrent_fast

IMPLEMENTATIONS = ["equations", "fast"]


def _equations_copy(layer: ConvLSTM) -> ConvLSTM:
    """The same layer, weights included, on the reference path."""
    reference = copy.deepcopy(layer)
    reference.implementation = "equations"
    return reference


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dims,space", [(1, (7,)), (2, (5, 6))])
@pytest.mark.parametrize(
    "peephole,norm", [(False, False), (True, False), (False, True), (True, True)]
)
def test_cell_shapes_and_every_parameter_gets_gradient(dims, space, peephole, norm, implementation):
    torch.manual_seed(0)
    cell = ConvLSTMCell(
        3, 4, kernel_size=3, dims=dims, peephole=peephole, norm=norm, implementation=implementation
    )
    x = torch.randn(2, 3, *space)
    h, c = cell(x)
    assert h.shape == c.shape == (2, 4, *space)
    h, c = cell(x, (h, c))  # a second step: peepholes see a non-zero C
    (h.square().sum() + c.sum()).backward()
    missing = [
        n for n, p in cell.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing, missing


def test_layer_shapes_states_and_batch_first():
    torch.manual_seed(0)
    layer = ConvLSTM(2, [4, 3], kernel_size=5)
    x = torch.randn(2, 6, 2, 8, 8)  # (B, T, C, H, W)
    out, states = layer(x)
    assert out.shape == (2, 6, 3, 8, 8) and [s[0].shape[1] for s in states] == [4, 3]
    assert torch.allclose(out[:, -1], states[-1][0])
    time_first = ConvLSTM(2, [4, 3], kernel_size=5, batch_first=False)
    time_first.load_state_dict(layer.state_dict())
    out_t, _ = time_first(x.transpose(0, 1))
    assert torch.allclose(out_t.transpose(0, 1), out, atol=1e-6)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_1x1_kernels_on_1x1_maps_equal_our_lstm_with_the_same_weights(implementation):
    torch.manual_seed(0)
    conv = ConvLSTM(5, 7, kernel_size=1, num_layers=2, dims=2, implementation=implementation)
    conv = conv.double()
    lstm = LSTM(5, 7, num_layers=2, batch_first=True, implementation="equations").double()
    with torch.no_grad():
        for k, cell in enumerate(conv.cells):
            getattr(lstm, f"weight_ih_l{k}").copy_(
                cell.conv_x.weight.flatten(1)
            )  # (4H, I, 1, 1) -> (4H, I)
            getattr(lstm, f"weight_hh_l{k}").copy_(cell.conv_h.weight.flatten(1))
            getattr(lstm, f"bias_ih_l{k}").copy_(cell.conv_x.bias)
            getattr(lstm, f"bias_hh_l{k}").copy_(cell.conv_h.bias)
    x = torch.randn(3, 4, 5, dtype=torch.double, requires_grad=True)  # (B, T, I)
    ours, states = conv(x[..., None, None])  # maps (B, T, I, 1, 1)
    ref, (h_n, c_n) = lstm(x)
    assert torch.allclose(ours[..., 0, 0], ref, atol=1e-10)
    assert torch.allclose(states[-1][1][..., 0, 0], c_n[-1], atol=1e-10)
    g_ours = torch.autograd.grad(ours.sum(), x)[0]
    g_ref = torch.autograd.grad(ref.sum(), x)[0]
    assert torch.allclose(g_ours, g_ref, atol=1e-10)
    # and the 1-D cell on length-1 signals is the same cell
    conv1 = ConvLSTMCell(5, 7, kernel_size=1, dims=1, implementation=implementation).double()
    conv1.conv_x.weight.data.copy_(conv.cells[0].conv_x.weight.data[..., 0])
    conv1.conv_h.weight.data.copy_(conv.cells[0].conv_h.weight.data[..., 0])
    conv1.conv_x.bias.data.copy_(conv.cells[0].conv_x.bias.data)
    conv1.conv_h.bias.data.copy_(conv.cells[0].conv_h.bias.data)
    h2, _ = conv.cells[0](x[:, 0, :, None, None])
    h1, _ = conv1(x[:, 0, :, None])
    assert torch.allclose(h1[..., 0], h2[..., 0, 0], atol=1e-12)


@pytest.mark.parametrize("norm", [False, True])
def test_layer_norm_makes_the_step_blind_to_the_scale_of_its_input_and_recurrent_terms(norm):
    """LN(W * x) does not change when W (with its bias) is multiplied by a positive number;
    without norm the same multiplication changes every gate."""
    torch.manual_seed(0)
    cell = ConvLSTMCell(3, 4, kernel_size=3, norm=norm)
    x, state = torch.randn(2, 3, 5, 5), (torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5))
    h, c = cell(x, state)
    with torch.no_grad():
        for conv, k in ((cell.conv_x, 3.0), (cell.conv_h, 0.5)):
            conv.weight.mul_(k), conv.bias.mul_(k)
    h2, c2 = cell(x, state)
    assert (
        torch.allclose(h, h2, atol=1e-4) == norm and torch.allclose(c, c2, atol=1e-4) == norm
    )  # eps aside


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "dims,space,bias", [(1, (7,), True), (2, (5, 6), True), (2, (5, 6), False)]
)
def test_the_step_gives_the_gates_of_the_two_convolutions(dims, space, bias, implementation):
    """The fast step convolves [X, H] with [W_x, W_h] once; the gates must be those of
    W_x * X + W_h * H, written out here term by term."""
    torch.manual_seed(0)
    cell = ConvLSTMCell(3, 4, kernel_size=3, dims=dims, bias=bias, implementation=implementation)
    cell = cell.double()
    x, h0, c0 = (
        torch.randn(2, 3, *space).double(),
        torch.randn(2, 4, *space).double(),
        torch.randn(2, 4, *space).double(),
    )
    i, f, g, o = (cell.conv_x(x) + cell.conv_h(h0)).chunk(4, 1)  # the equations, term by term
    c = torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    h2, c2 = cell(x, (h0, c0))
    assert torch.allclose(c2, c, atol=1e-12) and torch.allclose(h2, h, atol=1e-12)


def _step_by_step(layer, x):
    """The layer's outputs, each step through the cells as a plain function (outside
    ``batched_weight_grads``)."""
    states, outs = [None] * len(layer.cells), []
    for x_t in x.unbind(1):
        h, states = layer.step(x_t, states)
        outs.append(h)
    return torch.stack(outs, 1)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "dims,space,bias,peephole,norm",
    [
        (1, (7,), True, False, False),
        (2, (5, 6), True, True, False),
        (2, (5, 6), False, False, False),
        (2, (5, 6), True, True, True),
    ],
)
def test_forward_gradients_equal_the_equations_step_by_step(
    dims, space, bias, peephole, norm, implementation
):
    """``forward`` on the fast path computes each cell's weight gradient once over all steps
    (``batched_weight_grads``) and the gates' derivatives written out; on either path the
    gradients of the weights, the input and the first state must be those of the equations'
    steps taken one by one."""
    torch.manual_seed(0)
    layer = ConvLSTM(
        3,
        [4, 5],
        kernel_size=3,
        dims=dims,
        bias=bias,
        peephole=peephole,
        norm=norm,
        implementation=implementation,
    ).double()
    reference = _equations_copy(layer)
    x = torch.randn(2, 6, 3, *space, dtype=torch.double, requires_grad=True)
    target = torch.randn(2, 6, 5, *space, dtype=torch.double)
    grads = []
    for model, run in (
        (layer, lambda: layer(x)[0]),
        (reference, lambda: _step_by_step(reference, x)),
    ):
        x.grad = None
        ((run() - target).square().sum()).backward()
        grads.append([x.grad.clone()] + [p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        assert a.abs().sum() > 0 and torch.allclose(a, b, atol=1e-10, rtol=1e-9)
    assert all(cell._batched_conv is None for cell in layer.cells)  # left as it was


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_under_bf16_autocast_the_maps_come_back_in_the_callers_layout(implementation):
    """The fast path's 16-bit convolutions run channels last within; what the layer and its
    steps hand back lies as their input did, as torch's convolutions give it (``.view`` works
    on the outputs of maps given in the usual layout)."""
    layer = ConvLSTM(3, [8, 8], kernel_size=3, implementation=implementation)
    x = torch.randn(2, 4, 3, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, states = layer(x)
    assert out.is_contiguous() and all(t.is_contiguous() for state in states for t in state)
    out.view(2, -1).float().sum().backward()  # and the gradients flow through
    frame = x[:, 0].contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16), layer.batched_weight_grads():
        h, state = layer.step(frame)
        h, state = layer.step(frame, state)
    assert h.is_contiguous(memory_format=torch.channels_last) and not h.is_contiguous()


@pytest.mark.parametrize(
    "implementation,products,winograd",
    [
        ("equations", False, None),
        ("fast", False, None),
        ("fast", True, None),
        ("fast", False, torch.float32),  # a CPU without bfloat16 arithmetic
        ("fast", False, torch.bfloat16),  # one with
    ],
)
def test_under_bf16_autocast_forward_matches_the_equations_step_by_step(
    monkeypatch, implementation, products, winograd
):
    """Under bfloat16 autocast the fast path's weight gradients stay within 2 % of the largest
    of the equations', also as Winograd's products in float32 or bfloat16 (made to run so)."""
    monkeypatch.setattr(convlstm_fast, "products_are_faster", lambda: products)
    monkeypatch.setattr(convlstm_fast, "winograd_dtype", lambda w, p: winograd)
    torch.manual_seed(0)
    layer = ConvLSTM(3, [8, 8], kernel_size=3, implementation=implementation)
    reference = _equations_copy(layer)
    x = torch.rand(4, 5, 3, 6, 6)
    grads = []
    for model, run in (
        (layer, lambda: layer(x)[0]),
        (reference, lambda: _step_by_step(reference, x)),
    ):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = run()
        out.float().square().mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        assert a.dtype == torch.float32 and (a - b).abs().max() <= 0.02 * b.abs().max()


@pytest.mark.parametrize(
    "implementation,calls", [("auto", [5, 5]), ("fast", [5, 5]), ("equations", [])]
)
def test_fast_forward_computes_one_weight_gradient_per_cell_and_sequence(
    monkeypatch, implementation, calls
):
    """The speed of the fast path rests on it: one weight-gradient computation per cell and
    sequence; the equations take none of it."""
    seen = []
    real = convlstm_fast._stacked_weight_grad
    monkeypatch.setattr(
        convlstm_fast,
        "_stacked_weight_grad",
        lambda conv, xs, *a: seen.append(len(xs)) or real(conv, xs, *a),
    )
    layer = ConvLSTM(2, [3, 4], kernel_size=3, implementation=implementation)
    layer(torch.randn(2, 5, 2, 4, 4))[0].sum().backward()
    assert seen == calls  # fast: each of the 2 cells, the 5 steps at once


@pytest.mark.parametrize("frames_need_grad", [False, True])
@pytest.mark.parametrize("peephole", [False, True])
@pytest.mark.parametrize("products", [False, True])
@pytest.mark.parametrize("layout", ["usual", "channels_last", "winograd"])
def test_fast_path_from_a_zero_state_and_fixed_frames_equals_the_equations(
    monkeypatch, frames_need_grad, peephole, products, layout
):
    """From no state (zeros) the fast path convolves only the input, and it differentiates only
    the parts of ``[X_t, H_{t-1}]`` that need it (not frames that need no gradient): the
    outputs and every gradient must stay those of the equations from an explicit zero state,
    with the weight gradients as either CPU takes them (one product per kernel offset with AMX,
    else oneDNN's convolution backward), in either layout of the maps (channels last, as
    bfloat16 convolutions run, made to run so here in float64), and as Winograd's products
    (made to run so here in float64, with as few channels)."""
    monkeypatch.setattr(convlstm_fast, "products_are_faster", lambda: products)
    layouts = []
    channels_last = layout != "usual"
    if layout == "channels_last":
        monkeypatch.setattr(convlstm_fast, "_memory_format", lambda w: torch.channels_last)
    winograd = []
    if layout == "winograd":
        monkeypatch.setattr(
            convlstm_fast, "winograd_dtype", lambda w, p: winograd.append(w.shape) or w.dtype
        )
    real_rows = convlstm_fast._rows
    monkeypatch.setattr(
        convlstm_fast, "_rows", lambda m, last: layouts.append(last) or real_rows(m, last)
    )
    torch.manual_seed(0)
    layer = ConvLSTM(3, [4, 5], kernel_size=3, peephole=peephole, implementation="fast").double()
    reference = _equations_copy(layer)
    x = torch.randn(2, 4, 3, 5, 6, dtype=torch.double, requires_grad=frames_need_grad)
    zeros = [(torch.zeros(2, n, 5, 6, dtype=torch.double),) * 2 for n in (4, 5)]
    results = []
    for model, run in ((layer, lambda: layer(x)[0]), (reference, lambda: reference(x, zeros)[0])):
        x.grad = None
        out = run()
        out.square().sum().backward()
        grads = [p.grad.clone() for p in model.parameters()]
        results.append([out.detach(), *grads] + ([x.grad.clone()] if frames_need_grad else []))
    for a, b in zip(*results, strict=True):
        assert a.abs().sum() > 0 and torch.allclose(a, b, atol=1e-10, rtol=1e-9)
    if not peephole:  # the compiled gates took the maps in the layout of the convolutions
        assert layouts and set(layouts) == {channels_last}
    assert len(winograd) == (2 if layout == "winograd" else 0)  # each cell's convolution


@pytest.mark.parametrize("space", [(8, 8), (7, 5), (1, 1), (2, 3)])
@pytest.mark.parametrize("bias", [False, True])
def test_winograd_convolution_and_its_gradients_equal_the_direct_ones_in_float64(
    monkeypatch, space, bias
):
    """Winograd F(2x2, 3x3) (``csrc/winograd.h``): the forward, the input gradient (the flipped,
    transposed weight's transform) and the weight and bias gradients equal torch's direct
    convolution's, on even and odd map sizes (tiles past the edge)."""
    torch.manual_seed(0)
    x = torch.randn(3, 5, *space, dtype=torch.double).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(6, 5, 3, 3, dtype=torch.double)
    b = torch.randn(6, dtype=torch.double) if bias else None
    g = torch.randn(3, 6, *space, dtype=torch.double).contiguous(memory_format=torch.channels_last)
    u = convlstm_fast.winograd_weight(weight, torch.double)
    assert u.shape == (16, 5, 6)
    y = convlstm_fast.winograd_conv(x, u, b, torch.double)
    ref = torch.nn.functional.conv2d(x, weight, b, padding=1)
    assert y.shape == ref.shape and torch.allclose(y, ref, atol=1e-12, rtol=1e-10)
    back = convlstm_fast.winograd_weight(weight.flip(2, 3).transpose(0, 1), torch.double)
    dx = convlstm_fast.winograd_conv(g, back, None, torch.double)
    ref_dx = torch.nn.functional.conv_transpose2d(g, weight, padding=1)
    assert torch.allclose(dx, ref_dx, atol=1e-12, rtol=1e-10)
    monkeypatch.setattr(convlstm_fast, "winograd_dtype", lambda w, p: w.dtype)
    conv = convlstm_fast.BatchedWeightGradConv(weight, b, 2, 1)  # as Winograd's, in float64
    xs = [(x[:2], [True]), (x[2:], [True])]  # two steps: their inputs, all parts given
    grad_w, grad_b = convlstm_fast._winograd_weight_grad(conv, xs, [g[:2], g[2:]], bias)
    _, ref_w, ref_b = torch.ops.aten.convolution_backward(
        g, x, weight, [6] if bias else None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
        [False, True, bias],
    )  # fmt: skip
    assert torch.allclose(grad_w, ref_w, atol=1e-11, rtol=1e-10)
    assert (grad_b is None) == (not bias) and (not bias or torch.allclose(grad_b, ref_b))


def test_winograd_serves_3x3_same_convolutions_of_enough_channels_where_the_kernels_build(
    monkeypatch,
):
    """The rule (:func:`convlstm_fast.winograd_dtype`): 3x3 kernels with padding 1, at least
    :data:`WINOGRAD_MIN_CHANNELS` channels each way, float32, or bfloat16 (in bfloat16 on a CPU
    that computes it natively, else in float32); none without the compiled kernels."""
    rule = convlstm_fast.winograd_dtype
    n = convlstm_fast.WINOGRAD_MIN_CHANNELS
    assert rule(torch.empty(4 * n, 2 * n, 3, 3), 1) == torch.float32
    native = recurrent_fast.cpu_computes_bf16()
    bf16 = torch.bfloat16 if native else torch.float32
    assert rule(torch.empty(4 * n, 2 * n, 3, 3, dtype=torch.bfloat16), 1) == bf16
    for weight, padding in [
        (torch.empty(4 * n, 2 * n, 5, 5), 2),  # 5x5
        (torch.empty(4 * n, 2 * n, 3, 3), 0),  # not "same"
        (torch.empty(4 * n, n - 1, 3, 3), 1),  # too few channels in
        (torch.empty(4 * n, 2 * n, 3), 1),  # 1-d
        (torch.empty(4 * n, 2 * n, 3, 3, dtype=torch.double), 1),  # float64: oneDNN's
    ]:
        assert rule(weight, padding) is None
    monkeypatch.setattr(recurrent_fast, "extension", lambda: None)
    assert rule(torch.empty(4 * n, 2 * n, 3, 3), 1) is None


def test_at_the_default_rule_a_wide_layer_equals_the_equations_in_float32():
    """A layer wide enough for Winograd's products by default: outputs and gradients within
    1e-5 of the largest of the equations' in float32."""
    torch.manual_seed(0)
    n = convlstm_fast.WINOGRAD_MIN_CHANNELS
    layer = ConvLSTM(n, [n], kernel_size=3, implementation="fast")
    reference = _equations_copy(layer)
    assert convlstm_fast.winograd_dtype(convlstm_fast.joint_weights(layer.cells[0])[0], 1)
    x = torch.randn(2, 3, n, 6, 5, requires_grad=True)
    results = []
    for model in (layer, reference):
        x.grad = None
        out = model(x)[0]
        out.square().sum().backward()
        results.append(
            [out.detach(), x.grad.clone(), *(p.grad.clone() for p in model.parameters())]
        )
    for a, b in zip(*results, strict=True):
        assert a.abs().sum() > 0 and (a - b).abs().max() <= 1e-5 * b.abs().max()


def test_without_gradients_winograd_products_equal_the_direct_convolution(monkeypatch):
    """Inference (validation rollouts, ``predict``) takes Winograd's products too, the weight's
    transform kept per cell until a parameter changes: outputs within 1e-5 of the direct
    convolution's, before and after an in-place change of a weight."""
    torch.manual_seed(0)
    n = convlstm_fast.WINOGRAD_MIN_CHANNELS
    layer = ConvLSTM(n, [n], kernel_size=3, implementation="fast")
    x = torch.randn(2, 3, n, 6, 5)
    calls = []
    real = convlstm_fast.winograd_conv
    monkeypatch.setattr(convlstm_fast, "winograd_conv", lambda *a: calls.append(1) or real(*a))
    for _ in range(2):
        with torch.no_grad():
            out = layer(x)[0]
            with monkeypatch.context() as direct:
                direct.setattr(convlstm_fast, "_inference_winograd", lambda *a: None)
                ref = layer(x)[0]
        assert out.is_contiguous() and (out - ref).abs().max() <= 1e-5 * ref.abs().max()
        with torch.no_grad():
            layer.cells[0].conv_h.weight.mul_(-0.5)  # the kept transform must not be used
    assert len(calls) == 6  # 3 steps, twice


def test_inference_conv_computes_emulated_bfloat16_as_winograds_products(monkeypatch):
    """A forecaster's read-out without gradients, in bfloat16 on a CPU without bfloat16
    arithmetic (simulated): a "same" 3x3 ``Conv2d`` of 32+ channels each way as Winograd's
    products in float32 (within bfloat16's rounding of the float32 convolution, the transform
    made again after a weight changes); with native bfloat16, in float32, for other convolutions
    and when recording a graph, the module itself."""
    torch.manual_seed(0)
    n = convlstm_fast.WINOGRAD_MIN_CHANNELS
    calls = []
    real = convlstm_fast.winograd_conv
    monkeypatch.setattr(convlstm_fast, "winograd_conv", lambda *a: calls.append(a[-1]) or real(*a))
    monkeypatch.setattr(recurrent_fast, "cpu_computes_bf16", lambda: False)
    conv = torch.nn.Conv2d(2 * n, n, 3, padding=1)
    x = torch.randn(3, 2 * n, 7, 6)
    for _ in range(2):
        with torch.no_grad():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = convlstm_fast.inference_conv(conv, x)
            rounded = [t.bfloat16().float() for t in (x, conv.weight, conv.bias)]
            ref = F.conv2d(*rounded, padding=1)  # float32 on autocast's bfloat16 values
            conv.weight.mul_(-0.5)  # the kept transform must not be used again
        assert out.dtype == torch.bfloat16 and out.shape == ref.shape
        assert (out.float() - ref).abs().max() <= 1e-2 * ref.abs().max()
    assert calls == [torch.bfloat16] * 2
    others = [
        torch.nn.Conv2d(2 * n, n, 3, padding=1, padding_mode="reflect"),
        torch.nn.Conv2d(2 * n, n, 1),
        torch.nn.Conv2d(2 * n, n, 3, padding=1, stride=2),
        torch.nn.Conv2d(n - 1, n, 3, padding=1),
    ]
    for other in others:
        y = torch.randn(3, other.in_channels, 7, 6)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(convlstm_fast.inference_conv(other, y), other(y))
    with torch.no_grad():
        assert torch.equal(convlstm_fast.inference_conv(conv, x), conv(x))  # float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        convlstm_fast.inference_conv(conv, x).float().sum().backward()  # recording a graph
    monkeypatch.setattr(recurrent_fast, "cpu_computes_bf16", lambda: True)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        convlstm_fast.inference_conv(conv, x)  # native bfloat16: oneDNN's
    assert len(calls) == 2 and conv.weight.grad is not None


def test_fast_backward_skips_the_gradients_no_one_needs(monkeypatch):
    """The input gradients of the first cell's joined convolution: for its hidden part only when
    the frames need no gradient, none at the first step (from a zero state, which the frames
    alone enter), the whole ``[X_t, H_{t-1}]`` when the frames need one."""
    channels = []
    real = dict(convlstm_fast._CONV_T_FN)
    monkeypatch.setitem(
        convlstm_fast._CONV_T_FN,
        2,
        lambda g, w, **kw: channels.append(w.shape[1]) or real[2](g, w, **kw),
    )
    layer = ConvLSTM(2, [3], kernel_size=3, implementation="fast")
    x = torch.randn(2, 4, 2, 5, 5)
    layer(x)[0].sum().backward()
    assert channels == [3, 3, 3]  # steps 4, 3, 2: H_{t-1} only; step 1: nothing
    channels.clear()
    layer(x.requires_grad_())[0].sum().backward()
    assert channels == [5, 5, 5, 2] and x.grad.abs().sum() > 0  # step 1: X_1 only


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_without_gradients_forward_is_the_plain_step(implementation):
    torch.manual_seed(0)
    layer = ConvLSTM(2, [4], kernel_size=3, implementation=implementation)
    x = torch.randn(2, 3, 2, 5, 5)
    with torch.no_grad():
        out = layer(x)[0]
    # with gradients the fast path's gates are the compiled kernel's (a polynomial exp): equal
    # to float32 rounding, not bit for bit
    torch.testing.assert_close(out, _step_by_step(layer, x).detach(), atol=1e-6, rtol=1e-6)


def test_implementation_is_checked_shown_and_set_on_every_cell():
    layer = ConvLSTM(2, [3, 4], kernel_size=3)
    assert layer.implementation == "auto" and "implementation" not in repr(layer)
    layer.implementation = "equations"
    assert [cell.implementation for cell in layer.cells] == ["equations"] * 2
    assert "implementation='equations'" in repr(layer)
    with pytest.raises(ValueError, match="implementation"):
        layer.implementation = "fused"
    with pytest.raises(ValueError, match="implementation"):
        ConvLSTMCell(1, 2, implementation="quick")


@pytest.mark.parametrize("dims", [1, 2])
def test_gradcheck_float64_of_the_written_out_gate_derivatives(dims):
    """On the fast path, without peepholes, the gates' backward is written by hand (``LSTMGates``);
    gradcheck compares it with finite differences, through ``h`` and ``C`` together."""
    torch.manual_seed(0)
    cell = ConvLSTMCell(2, 3, kernel_size=3, dims=dims, implementation="fast").double()
    space = (4,) if dims == 1 else (3, 4)
    x = torch.randn(2, 2, *space, dtype=torch.double, requires_grad=True)
    h0, c0 = (torch.randn(2, 3, *space, dtype=torch.double, requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(lambda a, b, c: cell(a, (b, c)), (x, h0, c0))
    for k in (0, 1):  # only h or only C used: the other's gradient reaches backward as None
        assert torch.autograd.gradcheck(lambda a, b, c, k=k: cell(a, (b, c))[k], (x, h0, c0))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_gradcheck_float64_with_peepholes(implementation):
    torch.manual_seed(0)
    cell = ConvLSTMCell(2, 2, kernel_size=3, peephole=True, implementation=implementation).double()
    for p in (cell.w_ci, cell.w_cf, cell.w_co):
        p.data.normal_()
    x = torch.randn(1, 2, 3, 3, dtype=torch.double, requires_grad=True)
    c0 = torch.randn(1, 2, 3, 3, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(1, 2, 3, 3, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: cell(a, (b, c)), (x, h0, c0))


def test_fan_in_init_and_forget_bias():
    torch.manual_seed(0)
    lstm, fan_in = (
        ConvLSTMCell(4, 8, kernel_size=3),
        ConvLSTMCell(4, 8, kernel_size=3, init="fan-in", forget_bias=1.0),
    )
    assert lstm.conv_h.weight.abs().max() > 1 / 72**0.5  # U(±1/sqrt(8)), not U(±1/sqrt(8*9))
    assert (
        fan_in.conv_h.weight.abs().max() <= 1 / 72**0.5
        and fan_in.conv_x.weight.abs().max() <= 1 / 36**0.5
    )
    b = fan_in.conv_x.bias.detach()
    assert (
        b[8:16].min() > 0.8 and b[:8].abs().max() < 0.2 and b[16:].abs().max() < 0.2
    )  # only f (i, f, g, o)
    with pytest.raises(ValueError, match="init"):
        ConvLSTMCell(1, 2, init="zeros")


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="odd"):
        ConvLSTMCell(1, 2, kernel_size=4)
    with pytest.raises(ValueError, match="dims"):
        ConvLSTMCell(1, 2, dims=3)
    with pytest.raises(ValueError, match="expected"):
        ConvLSTMCell(1, 2)(torch.randn(2, 3, 4, 4))
