r"""The fast path of :class:`lstmvision.nn.RNN`, :class:`~lstmvision.nn.LSTM` and
:class:`~lstmvision.nn.GRU` (``implementation="fast"``): the same equations as the equations path
(:mod:`lstmvision.nn.cells`), with each time step's gate arithmetic in one compiled loop.

Why a C++ extension: the equations path runs the right matrix products but spends most of a
long sequence's time dispatching ~35 small element-wise operations per step from Python, and
torch's own CPU GRU is not fused at all. Here, for one layer in one direction:

* each step's pre-activations ``x_t W_ih^T + b + h_{t-1} W_hh^T`` are one pass of a small
  matrix-product kernel of our own (``csrc/step_product.h``), with ``[W_ih, W_hh]`` packed once
  per sequence: a general ``addmm`` repacks its weight at every call (at a thread's 16 rows it
  ran at 70-80 % of this kernel's speed), and the input part batched over all steps beforehand
  (as on the equations path) wrote a buffer the size of the sequence in a pass of its own (a
  third of the long LSTM's forward at 2 threads); the GRU keeps the input and the recurrent
  part apart (its ``n`` gate needs both), two passes;
* then one C++ loop for all gate equations (vectorised by the compiler; the sigmoid's ``exp``
  is a polynomial so that it vectorises), forward and backward through time;
* the weight, bias and input gradients are added up every ~1024 rows (steps x batch), one
  matrix product each per block of steps while its gradients are in cache, with the saved
  ``h_{t-1}``: no gradient buffer the size of the sequence (51 MB for a 784-step LSTM of 32
  sequences) is written, read back and page-faulted in;
* the buffers of 1 MB and more (the gates and states of every step, the output) are kept and
  reused by later calls once nothing holds them (``csrc/buffer_cache.h``), rather than taken
  from malloc afresh: fresh memory faults in each 4 KB page at first touch, a tenth of the long
  LSTM's time. Up to ``LSTMVISION_BUFFER_CACHE_MB`` (default 512) of free buffers are kept;
  ``0`` keeps none;
* a call that records no graph (``torch.no_grad``, ``torch.inference_mode``, nothing requiring
  a gradient) runs :class:`FastInference`: the same forward, keeping each step's gates and
  states only until the next step.

The extension (``csrc/recurrent.cpp`` and its two headers) is compiled with
``torch.utils.cpp_extension`` at first use (tens of seconds, once) into torch's extension cache
(``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``), under a name that hashes the
sources and the path, torch's version and this CPU's instruction set (it is built with
``-march=native``). Where it cannot be built (no
compiler, or ``LSTMVISION_NO_EXTENSION=1``), ``"fast"`` prints one line and runs the equations
path, which gives the same results.

It serves float32 and float64 CPU tensors (float64 for ``gradcheck``); other devices and dtypes,
and ONNX export or tracing, take torch's kernel (``"auto"``) or the equations path (``"fast"``).
Under CPU autocast the layer runs in float32.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import sys
import time
from functools import cache
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

SOURCE = Path(__file__).with_name("csrc") / "recurrent.cpp"
HEADERS = tuple(
    SOURCE.with_name(name) for name in ("step_product.h", "buffer_cache.h", "winograd.h")
)
DISABLE_ENV = "LSTMVISION_NO_EXTENSION"


def _cpu_flags() -> str:
    """This CPU's instruction-set flags (the extension is built for them)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_computes_bf16() -> bool:
    """Whether this CPU's oneDNN computes bfloat16 natively (AVX512-BF16 or AMX); elsewhere it
    emulates it, many times slower than float32. Not cached: tests simulate either CPU."""
    try:  # oneDNN's own check (a private torch function)
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without it: say no
        return False


def _build_name() -> str:
    # the source's path too: cpp_extension rewrites a folder's build file for each source path,
    # so two checkouts (or a CI clone) sharing one name would rebuild it each time they alternate
    key = "\n".join(
        (
            str(SOURCE.resolve()),
            *(path.read_text() for path in (SOURCE, *HEADERS)),
            torch.__version__,
            _cpu_flags(),
            sys.version,
        )
    )
    return "lstmvision_recurrent_" + hashlib.sha256(key.encode()).hexdigest()[:12]


@cache
def extension() -> ModuleType | None:
    """The compiled kernels (built on first call), or ``None`` where they cannot be built."""
    if os.environ.get(DISABLE_ENV):
        print(
            f"lstmvision: {DISABLE_ENV} is set; implementation='fast' runs the equations path",
            file=sys.stderr,
        )
        return None
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)  # not its warning that a CPU machine has no CUDA
    try:
        from torch.utils import cpp_extension
    finally:
        logger.setLevel(level)
    name = _build_name()
    build_dir = Path(cpp_extension._get_build_directory(name, verbose=False))
    fresh = not any(build_dir.glob(f"{name}*.so"))
    if fresh:
        print(
            f"lstmvision: compiling the fast recurrent kernels into {build_dir} (once)",
            file=sys.stderr,
        )
    start = time.perf_counter()
    try:
        module = cpp_extension.load(
            name=name,
            sources=[str(SOURCE)],
            extra_cflags=["-O3", "-march=native", "-fno-trapping-math", "-fopenmp"],
            extra_ldflags=["-fopenmp"],
            verbose=False,
        )
    except Exception as error:  # no compiler, no ninja, a failed build: one line, then fallback
        reason = str(error).strip().split(":")[0] or type(error).__name__  # not the command
        print(
            f"lstmvision: cannot build the fast recurrent kernels ({reason}); "
            "implementation='fast' runs the equations path",
            file=sys.stderr,
        )
        return None
    if fresh:
        print(f"lstmvision: built in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return module


def supports(x: Tensor) -> bool:
    """Whether the fast kernels serve this input (float32/float64 on a CPU, not being traced
    or exported)."""
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and not torch.jit.is_tracing()
        and not torch.onnx.is_in_onnx_export()
        and not torch.compiler.is_compiling()  # torch.export, torch.compile: torch's kernel
    )


def _padded(batch_sizes, x: Tensor) -> bool:
    """Whether some of the batch's sequences end before the last step (rows the kernels leave
    zero there)."""
    return batch_sizes[-1] < x.size(1)


def _forward(
    equations, batch_sizes, reverse, x, weight_ih, weight_hh, bias_ih, bias_hh, state, keep
):
    """One layer in one direction through the kernels: ``(output, *final states)`` and what the
    backward needs (one step's scratch unless ``keep``)."""
    ext = extension()
    kind = equations.kernel
    padded = _padded(batch_sizes, x)
    folded = kind != "gru" and bias_hh is not None
    bias = bias_ih + bias_hh if folded else bias_ih  # None without biases
    inputs = (x.contiguous(), weight_ih.contiguous(), bias)
    weight_hh = weight_hh.contiguous()
    state = tuple(s.contiguous() for s in state)
    args = (batch_sizes, reverse, padded, keep)
    if kind == "lstm":
        output, h_n, c_n, gates, c_prev, tanh_c, h_prev = ext.lstm_forward(
            *inputs, *state, weight_hh, *args
        )
        return (output, h_n, c_n), (gates, c_prev, tanh_c, h_prev)
    if kind == "gru":
        output, h_n, gates, hn_part, h_prev = ext.gru_forward(
            *inputs, state[0], weight_hh, bias_hh, *args
        )
        return (output, h_n), (gates, hn_part, h_prev)
    output, h_n, h_prev = ext.rnn_forward(*inputs, state[0], weight_hh, kind == "relu", *args)
    return (output, h_n), (output, h_prev)


class FastInference:
    """:class:`FastRecurrence` for a call that builds no graph (``torch.no_grad``,
    ``torch.inference_mode``, nothing requiring a gradient): the same forward, with nothing kept
    for a backward (each step's gates and states in one step's scratch), and no autograd."""

    @staticmethod
    def apply(equations, batch_sizes, reverse, x, weight_ih, weight_hh, bias_ih, bias_hh, *state):
        weights = (weight_ih, weight_hh, bias_ih, bias_hh)
        outputs, _ = _forward(equations, batch_sizes, reverse, x, *weights, state, keep=False)
        return outputs


class FastRecurrence(torch.autograd.Function):
    """One layer in one direction on the compiled kernels; the same inputs and outputs as
    :class:`lstmvision.nn.recurrent._Recurrence` (``equations`` names the cell)."""

    @staticmethod
    def forward(
        ctx, equations, batch_sizes, reverse, x, weight_ih, weight_hh, bias_ih, bias_hh, *state
    ):
        weights = (weight_ih, weight_hh, bias_ih, bias_hh)
        outputs, saved = _forward(equations, batch_sizes, reverse, x, *weights, state, keep=True)
        ctx.kind = equations.kernel
        ctx.args = (batch_sizes, reverse, _padded(batch_sizes, x))
        ctx.has_bias = bias_ih is not None
        ctx.save_for_backward(x, weight_ih, weight_hh, *saved)
        return outputs

    @staticmethod
    @once_differentiable
    def backward(ctx, d_output, *d_state):
        ext = extension()
        x, weight_ih, weight_hh, *saved = ctx.saved_tensors
        d_output = d_output.contiguous()
        d_state = [d.contiguous() for d in d_state]
        # the kernels add up the weight, bias and input gradients in blocks of steps; they return
        # None for d_x when x needs no gradient and for the biases without bias, and the same
        # tensor for b_ih and b_hh where the two enter as a sum (LSTM, RNN)
        inputs = (x.contiguous(), weight_ih.contiguous(), weight_hh)
        flags = (ctx.needs_input_grad[3], ctx.has_bias)
        if ctx.kind == "lstm":
            gates, c_prev, tanh_c, h_prev = saved
            grads = ext.lstm_backward(
                d_output, *d_state, gates, c_prev, tanh_c, h_prev, *inputs, *flags, *ctx.args
            )
        elif ctx.kind == "gru":
            gates, hn_part, h_prev = saved
            grads = ext.gru_backward(
                d_output, d_state[0], gates, hn_part, h_prev, *inputs, *flags, *ctx.args
            )
        else:
            output, h_prev = saved
            relu = ctx.kind == "relu"
            grads = ext.rnn_backward(
                d_output, d_state[0], output, h_prev, *inputs, *flags, relu, *ctx.args
            )
        d_x, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh, *d_initial = grads
        return None, None, None, d_x, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh, *d_initial
