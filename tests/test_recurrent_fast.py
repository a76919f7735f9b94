"""The fast path's own cases: equal to the equations path, its one-line fallback where the
kernels cannot be built, CPU autocast, and the ConvLSTM's compiled gates. The grid against
torch's kernel (directions, layers, lengths, initial states) is in test_nn_recurrent.py."""

import os
import subprocess
import sys

import pytest
import torch

from lstmvision.nn import GRU, LSTM, RNN, ConvLSTM, LSTMCell, recurrent_fast
from lstmvision.nn.recurrent import IMPLEMENTATIONS

LAYERS = {"lstm": (LSTM, {}), "gru": (GRU, {}), "rnn-relu": (RNN, {"nonlinearity": "relu"})}


def _both(name, hidden=8, **kwargs):
    cls, extra = LAYERS[name]
    fast = cls(3, hidden, **extra, **kwargs, implementation="fast")
    equations = cls(3, hidden, **extra, **kwargs, implementation="equations")
    equations.load_state_dict(fast.state_dict())
    return fast, equations


def _results(module, x, lengths=None):
    x.grad = None
    module.zero_grad()
    output, state = module(x, lengths=lengths)
    state = state if isinstance(state, tuple) else (state,)
    loss = output.sin().sum() + sum(s.square().sum() for s in state)
    loss.backward()
    return [output, *state, x.grad, *(p.grad for p in module.parameters())]


def test_the_extension_builds_here():
    """g++ and ninja are on every machine CI runs on: the fast path must not quietly fall back."""
    assert recurrent_fast.extension() is not None


@pytest.mark.parametrize("name", LAYERS)
def test_fast_equals_the_equations_path(name):
    torch.manual_seed(0)
    fast, equations = _both(name, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(5, 70, 3, requires_grad=True)  # a longer sequence than the grid's
    lengths = torch.tensor([70, 12, 1, 69, 33])
    for lens in (None, lengths):
        for a, b in zip(_results(fast, x, lens), _results(equations, x, lens), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", LAYERS)
def test_batch_split_between_threads(name):
    """At 2 threads each thread runs its own rows of the batch through all the steps (packed
    rows sorted by length): the same results as the equations path, and as at 1 thread."""
    torch.manual_seed(0)
    fast, equations = _both(name, bidirectional=True)
    x = torch.randn(9, 40, 3, requires_grad=True)
    lengths = torch.randint(1, 10, (40,))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        split = _results(fast, x, lengths)
        torch.set_num_threads(1)
        single = _results(fast, x, lengths)
    finally:
        torch.set_num_threads(threads)
    for a, b, c in zip(split, single, _results(equations, x, lengths), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("hidden", [13, 37])
def test_step_product_every_tile_and_panel(name, hidden):
    """The per-step product (csrc/step_product.h) runs rows in tiles of 8 (or 6), then one tile
    of the rest, and columns in panels of 32 (or 16), the last one partial: 15 sequences whose
    ends leave 15, 13, 12, 11, 10, 8, 7, 6, 5, 3 and 1 rows (every rest from 1 to 7) and 13 or
    37 units (G x H and H columns that no panel width divides) give the equations path's outputs
    and gradients."""
    torch.manual_seed(0)
    fast, equations = _both(name, hidden, bidirectional=True)
    x = torch.randn(11, 15, 3, requires_grad=True)
    lengths = torch.tensor([11, 10, 10, 9, 9, 8, 7, 6, 5, 5, 4, 3, 2, 1, 1])
    for lens in (None, lengths):
        for a, b in zip(_results(fast, x, lens), _results(equations, x, lens), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", LAYERS)
def test_gradients_added_up_in_blocks_of_steps(name):
    """The kernels add the weight, bias and input gradients up in blocks of about 1024 rows
    (steps x batch): 128 sequences of 30 steps make 4 blocks (the last one shorter), both
    directions, packed rows, two layers, 1 and 2 threads: the equations path's gradients."""
    torch.manual_seed(0)
    fast, equations = _both(name, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(128, 30, 3, requires_grad=True)
    threads = torch.get_num_threads()
    for lengths in (None, torch.randint(1, 31, (128,))):
        reference = _results(equations, x, lengths)
        try:
            for count in (1, 2):
                torch.set_num_threads(count)
                for a, b in zip(_results(fast, x, lengths), reference, strict=True):
                    # a weight gradient sums 3,840 rows: float32 rounding is relative to its
                    # largest entries (both paths are ~1e-4 from a float64 run here)
                    scale = max(1.0, b.abs().max().item())
                    torch.testing.assert_close(a, b, atol=1e-5 * scale, rtol=1e-5)
        finally:
            torch.set_num_threads(threads)


def test_fallback_without_the_extension_prints_one_line_and_runs_the_equations(monkeypatch):
    """A build that fails (no compiler): one line on stderr, and the same results."""
    from torch.utils import cpp_extension

    def fail(*args, **kwargs):
        raise RuntimeError("Error building extension 'x': g++: not found")

    recurrent_fast.extension.cache_clear()
    monkeypatch.setattr(cpp_extension, "load", fail)
    try:
        assert recurrent_fast.extension() is None
        torch.manual_seed(0)
        fast, equations = _both("gru")
        assert fast._path(torch.zeros(4, 2, 3)) == "equations"
        assert GRU(3, 8)._path(torch.zeros(4, 2, 3)) == "fused"  # auto: torch's kernel
        x = torch.randn(6, 2, 3, requires_grad=True)
        for a, b in zip(_results(fast, x), _results(equations, x), strict=True):
            assert torch.equal(a, b)
    finally:
        recurrent_fast.extension.cache_clear()


def test_disabled_by_environment_says_so_in_one_line():
    code = (
        "import torch; from lstmvision.nn import LSTM; "
        "m = LSTM(2, 3, implementation='fast'); print(m._path(torch.zeros(4, 1, 2)))"
    )
    env = {**os.environ, recurrent_fast.DISABLE_ENV: "1"}
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0 and run.stdout.strip() == "equations"
    lines = [line for line in run.stderr.splitlines() if line.startswith("lstmvision:")]
    assert len(lines) == 1 and recurrent_fast.DISABLE_ENV in lines[0]


def test_fast_under_cpu_autocast_runs_in_float32():
    torch.manual_seed(0)
    fast, equations = _both("lstm")
    x = torch.randn(6, 2, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, _ = fast(x)
    assert output.dtype == torch.float32
    torch.testing.assert_close(output, equations(x)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", LAYERS)
def test_fast_path_under_inference_mode_on_two_threads(name):
    """Lightning validates and tests under ``torch.inference_mode``; the kernels' worker threads
    write into its tensors (a GRU at 2 threads once failed there: "Inplace update to inference
    tensor outside InferenceMode")."""
    fast, equations = _both(name, batch_first=True)
    x = torch.randn(32, 20, 3)  # 32 rows: more than one thread's chunk
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.inference_mode():
            output, _ = fast(x)
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        torch.testing.assert_close(output, equations(x)[0], atol=1e-5, rtol=1e-5)


def test_convlstm_compiled_gates_equal_the_equations():
    torch.manual_seed(0)
    fast = ConvLSTM(2, 4, num_layers=2, implementation="fast").double()
    equations = ConvLSTM(2, 4, num_layers=2, implementation="equations").double()
    equations.load_state_dict(fast.state_dict())
    x = torch.randn(2, 3, 2, 5, 6, dtype=torch.double, requires_grad=True)
    results = []
    for module in (fast, equations):
        x.grad = None
        output, states = module(x)
        (output.sin().sum() + states[-1][1].square().sum()).backward()
        results.append([output, x.grad, *(p.grad for p in module.parameters())])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def _spy_on_the_kernels(monkeypatch) -> list:
    """The names of the compiled kernels called from now on, in order."""
    calls = []
    compiled = recurrent_fast.extension()

    class Spy:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(compiled, name)

    monkeypatch.setattr(recurrent_fast, "extension", lambda: Spy())
    return calls


def test_convlstm_gates_take_the_compiled_kernel_when_training(monkeypatch):
    calls = _spy_on_the_kernels(monkeypatch)
    layer = ConvLSTM(2, 4)
    x = torch.randn(1, 2, 2, 4, 4)
    with torch.no_grad():
        layer(x)
    assert calls == []  # inference: the whole-map operations
    layer(x)[0].sum().backward()
    assert set(calls) == {"lstm_gates_forward", "lstm_gates_backward"}


def test_row_lstm_task_takes_every_implementation():
    """`train row-lstm --implementation fast` reaches the layer (the task's choices are the
    layer's)."""
    from lstmvision.models import get_model
    from lstmvision.tasks import get_task
    from lstmvision.tasks.config import resolve_config

    task = get_task("row-lstm")()
    for name in IMPLEMENTATIONS:
        cfg = resolve_config(task.Config, overrides={"implementation": name, "cell": "gru"})
        model_name, kwargs = task.model_spec(cfg)
        model = get_model(model_name, **kwargs)
        layers = [m for m in model.modules() if isinstance(m, GRU)]
        assert layers and all(m.implementation == name for m in layers)


def _cell_results(cell, x, hx):
    for tensor in (x, *hx):
        tensor.grad = None
    cell.zero_grad()
    h, c = cell(x, hx)
    (h.sin().sum() + c.square().sum()).backward()
    return [h, c, x.grad, *(s.grad for s in hx), *(p.grad for p in cell.parameters())]


@pytest.mark.parametrize("batched", [True, False])
def test_lstm_cell_paths_are_equal(batched):
    """The captioner's cell: fast (compiled gates), equations and torch's fused cell give the
    same outputs and gradients, batched and unbatched."""
    torch.manual_seed(0)
    cells = {name: LSTMCell(5, 7, implementation=name) for name in ("fast", "equations", "fused")}
    for cell in cells.values():
        cell.load_state_dict(cells["fast"].state_dict())
    shape = (3,) if batched else ()
    x = torch.randn(*shape, 5, requires_grad=True)
    hx = tuple(torch.randn(*shape, 7, requires_grad=True) for _ in range(2))
    results = {name: _cell_results(cell, x, hx) for name, cell in cells.items()}
    for other in ("equations", "fused"):
        for a, b in zip(results["fast"], results[other], strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_lstm_cell_fast_gradcheck_and_default(monkeypatch):
    torch.manual_seed(0)
    cell = LSTMCell(4, 3, implementation="fast").double()
    x = torch.randn(2, 4, dtype=torch.double, requires_grad=True)
    hx = tuple(torch.randn(2, 3, dtype=torch.double, requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(lambda x, h, c: cell(x, (h, c)), (x, *hx))
    calls = _spy_on_the_kernels(monkeypatch)
    LSTMCell(4, 3)(torch.randn(2, 4))[0].sum().backward()
    assert calls == []  # the default is the equations (the recipes' figures stay as measured)
    LSTMCell(4, 3, implementation="fast")(torch.randn(2, 4))[0].sum().backward()
    assert set(calls) == {"lstm_gates_forward", "lstm_gates_backward"}
    with pytest.raises(ValueError, match="implementation must be one of"):
        LSTMCell(4, 3, implementation="auto")
    cell = LSTMCell(4, 3)
    with pytest.raises(ValueError, match="implementation must be one of"):
        cell.implementation = "fused "  # checked when set later too, like the layers'
    cell.implementation = "fused"
    assert "implementation='fused'" in repr(cell)


def _train_call(module, x):
    output, _ = module(x)
    output.square().sum().backward()
    return output


def test_buffers_reused_only_once_nothing_holds_them():
    """The fast path keeps its large buffers (csrc/buffer_cache.h) and hands one out again only
    when no tensor shares its memory: an output still held keeps its values through later calls,
    and a released one's memory serves the next call."""
    ext = recurrent_fast.extension()
    ext.buffer_cache_clear()
    torch.manual_seed(0)
    layer = LSTM(3, 64, implementation="fast")
    x = torch.randn(200, 32, 3, requires_grad=True)  # (200, 32, 64) floats: 1.6 MB a buffer
    held = _train_call(layer, x)
    kept = held.detach().clone()
    bytes_kept, count = ext.buffer_cache_stats()
    assert count >= 5 and bytes_kept >= 5 * 200 * 32 * 64 * 4  # output, states, gates, block
    second = _train_call(layer, x)
    assert second.data_ptr() != held.data_ptr()
    torch.testing.assert_close(held, kept, atol=0, rtol=0)  # untouched by the second call
    assert ext.buffer_cache_stats()[0] > bytes_kept  # held: a new buffer for the second output
    stats = ext.buffer_cache_stats()
    del second
    third = _train_call(layer, x)
    assert ext.buffer_cache_stats() == stats  # every buffer of the third call reused
    torch.testing.assert_close(third, held)
    torch.testing.assert_close(held, kept, atol=0, rtol=0)


def test_buffers_of_two_graphs_alive_at_once():
    """Two forward passes before either backward (and a backward that keeps its graph): each
    graph keeps its own saved buffers, and the gradients equal the equations path's."""
    torch.manual_seed(0)
    fast, equations = _both("lstm", 64)  # (150, 40, 64) floats: 1.5 MB a buffer
    xs = [torch.randn(150, 40, 3, requires_grad=True) for _ in range(2)]

    def grads(module):
        module.zero_grad()
        outputs = [module(x)[0] for x in xs]
        losses = [o.sin().sum() for o in outputs]
        losses[1].backward(retain_graph=True)
        losses[0].backward()
        losses[1].backward()  # the kept graph, a second time: its buffers are still its own
        return [x.grad.clone() for x in xs] + [p.grad.clone() for p in module.parameters()]

    for x in xs:
        x.grad = None
    fast_grads = grads(fast)
    for x in xs:
        x.grad = None
    for a, b in zip(fast_grads, grads(equations), strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-5)


def test_buffer_cache_limit():
    """Free buffers beyond LSTMVISION_BUFFER_CACHE_MB are let go, oldest first; 0 keeps none."""
    ext = recurrent_fast.extension()
    ext.buffer_cache_clear()
    layer = GRU(3, 64, implementation="fast")
    before = ext.buffer_cache_limit_mb(4)
    try:
        for steps in (100, 200, 300, 400):  # each a new size: new buffers, the old ones free
            _train_call(layer, torch.randn(steps, 32, 3))
        # the last call's buffers (gates, output, h_part, h_{t-1}; let go after it) and at most
        # 4 MB of the earlier ones (all of them: 2.5 times as much)
        last = 400 * 32 * (192 + 3 * 64) * 4
        assert ext.buffer_cache_stats()[0] <= last + (4 << 20)
        ext.buffer_cache_limit_mb(0)
        assert ext.buffer_cache_stats() == [0, 0]
        _train_call(layer, torch.randn(100, 32, 3))
        assert ext.buffer_cache_stats() == [0, 0]
    finally:
        ext.buffer_cache_limit_mb(before)


@pytest.mark.parametrize("name", LAYERS)
def test_forward_without_a_graph_keeps_nothing_and_gives_the_same_outputs(name, monkeypatch):
    """Under torch.no_grad, or with nothing requiring a gradient, the fast path runs its forward
    with one step's scratch for the gates and states (FastInference, no autograd): the same
    outputs and final states as the training forward, packed rows and both directions."""
    torch.manual_seed(0)
    fast, _ = _both(name, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(6, 30, 3)
    lengths = torch.tensor([30, 7, 1, 29, 12, 30])
    calls = []
    real = recurrent_fast._forward

    def spy(*args, keep):
        calls.append(keep)
        return real(*args, keep=keep)

    monkeypatch.setattr(recurrent_fast, "_forward", spy)
    for lens in (None, lengths):
        calls.clear()
        trained = fast(x, lengths=lens)  # parameters require gradients: a graph
        with torch.no_grad():
            inferred = fast(x, lengths=lens)
        fast.requires_grad_(False)
        frozen = fast(x, lengths=lens)
        fast.requires_grad_(True)
        assert calls == [True] * 4 + [False] * 8  # 2 layers x 2 directions per call
        assert not inferred[0].requires_grad and not frozen[0].requires_grad
        for other in (inferred, frozen):
            for a, b in zip(
                torch.utils._pytree.tree_leaves(trained),
                torch.utils._pytree.tree_leaves(other),
                strict=True,
            ):
                torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
