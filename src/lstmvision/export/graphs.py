"""The graphs ``lstmvision export`` writes: one builder per task.

A :class:`Graph` is a module whose ``forward`` takes and returns plain tensors (what an ONNX graph
has), the names of its inputs and outputs, their dynamic axes, a maker of example inputs at a
batch size and a sequence length, and ``info``: what a user of the graph needs besides it
(classes, charset, vocabulary, decoding settings), stored in the file's metadata.

The graphs take what the task's predictor feeds its model, after the predictor's preprocessing
(``lstmvision.inference``): images in [0, 1], line images with ink bright, token ids.

* ``row-lstm``, ``cnn``: ``images (B, 1, S, S)`` -> ``logits (B, classes)``.
* ``textline``: ``images (B, 1, H, W)``, ``widths (B,)`` (true widths of a right-padded batch) ->
  ``logits (T, B, C)`` (blank 0, ``T = ceil(W / reduction)``) and ``lengths (B,)`` (the frames of
  each line); :func:`lstmvision.export.runtime.ctc_greedy_texts` decodes them.
* ``caption``: two graphs. ``encoder``: ``photos (B, 3, S, S)`` -> the decoder's first state
  (``h``, ``c``) and the fixed context (``features``, ``projected``: the attention's
  ``W_a a_i + b``). ``decoder``: one word, ``tokens (N,)``, state, context -> ``log_probs
  (N, V)``, the new state (``h_out``, ``c_out``) and ``alpha (N, L)``, where it looked.
* ``char-lm``: ``tokens (B, T)``, ``h``, ``c`` ``(layers, B, H)`` -> ``logits (B, T, V)``,
  ``h_out``, ``c_out``: a prompt (``T`` of any length) or one step (``T = 1``).
* ``clip-classify``: ``clips (B, T, C, H, W)`` -> ``logits (B, classes)``.
* ``next-frame``: ``frames (B, T_in, 1, H, W)`` -> ``future (B, T_out, 1, H, W)`` clamped to
  [0, 1] as the predictor does; ``T_in`` and ``T_out`` are the run's (the rollout is unrolled
  into the graph, so they are fixed).

Dynamic axes: the batch everywhere; the line width, the prompt length and the clip length.
The recurrent state starts at zeros inside the graph where the model starts it so (a classifier,
the CRNN, the LRCN); it is an input where the model takes it (the char-LM, the caption decoder).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmvision.errors import ConfigError
from lstmvision.nn import GRU, LSTM, RNN, ConvLSTMCell

Example = Callable[[int, int | None], tuple[Tensor, ...]]


@dataclass
class Graph:
    """One ONNX graph: ``module(*example(batch, length))`` gives its outputs in order."""

    module: nn.Module
    inputs: list[str]
    outputs: list[str]
    dynamic: dict[str, dict[int, str]]
    example: Example
    lengths: tuple[int, ...] = ()
    """two sequence lengths parity is checked at; () where the graph's length is fixed"""
    part: str = ""
    """"" for a task with one graph; "encoder" or "decoder" for the captioner"""
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        # eval throughout: the exporter restores the wrapper's mode afterwards, and a wrapper
        # left in training mode would put the model's dropout back on for torch's reference
        self.module.eval()


def exportable(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode that the TorchScript exporter reads right.

    Our RNN/LSTM/GRU layers run torch's fused kernel (``implementation="fused"``: the same
    parameters, proven equal to the equations path in tests/test_nn_recurrent.py), which the
    exporter maps to ONNX's ``RNN``/``LSTM``/``GRU`` operators; the equations path is an
    autograd Function the exporter cannot inline. ConvLSTM cells run their plain equations: the
    fast path's autograd Functions are inlined without error into a graph that computes NaN.
    """
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(module, (RNN, LSTM, GRU)):
            module.implementation = "fused"
        elif isinstance(module, ConvLSTMCell):
            module.implementation = "equations"
    return model


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _batch(names: list[str], axis: int = 0) -> dict[str, dict[int, str]]:
    return {n: {axis: "batch"} for n in names}


# ------------------------------------------------------------------------------- classifiers


def classifier(predictor) -> list[Graph]:
    """``row-lstm`` and ``cnn``: grey images at the model's size -> class logits."""
    from lstmvision.data.digits import dataset_info

    info = dataset_info(predictor.config["dataset"])
    size = predictor.config.get("image_size") or info.size

    def example(batch: int, length: int | None = None) -> tuple[Tensor, ...]:
        return (torch.rand(batch, 1, size, size, generator=_generator()),)

    return [
        Graph(
            exportable(predictor.model),
            ["images"],
            ["logits"],
            _batch(["images", "logits"]),
            example,
            info={
                "classes": list(info.classes),
                "image_size": size,
                "input": "grey images (B, 1, S, S) in [0, 1], bright object on a dark ground",
            },
        )
    ]


# ---------------------------------------------------------------------------------- text lines


class LineGraph(nn.Module):
    """A CRNN on right-padded line images of any width; also each line's number of frames."""

    def __init__(self, crnn: nn.Module):
        super().__init__()
        self.crnn = crnn

    def forward(self, images: Tensor, widths: Tensor) -> tuple[Tensor, Tensor]:
        r = self.crnn.reduction
        # the CRNN's own padding to a multiple of r, in operations the graph keeps for any width
        # (its Python arithmetic on the width would be frozen at the traced width)
        target = (images.shape[-1] + r - 1) // r * r
        padded = F.pad(images, (0, r - 1))[..., :target]  # (B, 1, H, ceil(W / r) * r)
        logits = self.crnn(padded, widths)  # (T, B, C)
        return logits, self.crnn.output_lengths(widths).clamp(max=logits.shape[0])  # (B,)


def textline(predictor) -> list[Graph]:
    crnn = predictor.model
    height = crnn.height

    def example(batch: int, length: int | None = None) -> tuple[Tensor, ...]:
        width = length or 120
        g = _generator()
        images = torch.rand(batch, 1, height, width, generator=g)
        widths = torch.randint(1, width + 1, (batch,), generator=g)
        widths[0] = width  # the widest line fills the batch
        for b, w in enumerate(widths.tolist()):
            images[b, :, :, w:] = 0  # right padding: blank paper
        return images, widths

    return [
        Graph(
            LineGraph(exportable(crnn)),
            ["images", "widths"],
            ["logits", "lengths"],
            {
                "images": {0: "batch", 3: "width"},
                "widths": {0: "batch"},
                "logits": {0: "frames", 1: "batch"},
                "lengths": {0: "batch"},
            },
            example,
            lengths=(61, 250),
            info={
                "charset": crnn.charset,
                "blank": 0,
                "height": height,
                "reduction": crnn.reduction,
                "input": "line images (B, 1, H, W) in [0, 1], ink bright, right-padded with 0",
            },
        )
    ]


# ---------------------------------------------------------------------------------- captioner


class CaptionEncoder(nn.Module):
    def __init__(self, captioner: nn.Module):
        super().__init__()
        self.captioner = captioner

    def forward(self, photos: Tensor) -> tuple[Tensor, ...]:
        state, context = self.captioner.start(self.captioner.encode(photos))
        return (*state, *context)


class CaptionDecoder(nn.Module):
    def __init__(self, captioner: nn.Module, num_states: int):
        super().__init__()
        self.captioner, self.num_states = captioner, num_states

    def forward(self, tokens: Tensor, *tensors: Tensor) -> tuple[Tensor, ...]:
        state, context = tensors[: self.num_states], tensors[self.num_states :]
        log_probs, state, alpha = self.captioner.step(tokens, tuple(state), tuple(context))
        return (log_probs, *state) + (() if alpha is None else (alpha,))


def caption(predictor) -> list[Graph]:
    from lstmvision.models.captioner import END, PAD, START, UNK, ShowAttendTell

    model = exportable(predictor.model)
    size = model.image_size
    states = ["h", "c"] if model.cell == "lstm" else ["h"]
    attends = isinstance(model, ShowAttendTell)
    context = ["features", "projected"] if attends else []
    encoder, decoder = CaptionEncoder(model), CaptionDecoder(model, len(states))

    def photos(batch: int, length: int | None = None) -> tuple[Tensor, ...]:
        return (torch.rand(batch, 3, size, size, generator=_generator()),)

    def step_inputs(batch: int, length: int | None = None) -> tuple[Tensor, ...]:
        """The inputs of decoding step ``length`` (torch's greedy words before it)."""
        with torch.no_grad():
            tensors = encoder(*photos(batch))
            tokens = torch.full((batch,), START, dtype=torch.long)
            for _ in range((length or 1) - 1):
                log_probs, *state = decoder(tokens, *tensors)[: 1 + len(states)]
                tokens = log_probs.argmax(-1)
                tensors = (*state, *tensors[len(states) :])
        return (tokens, *tensors)

    cfg = predictor.config
    info = {
        "words": model.words,
        "image_size": size,
        "beam": int(cfg.get("beam", 3)),
        "max_len": int(cfg.get("max_len", 20)),
        "length_penalty": float(cfg.get("length_penalty", 0.0)),
        "min_len": 2,
        "start": START,
        "end": END,
        "banned": [PAD, START, UNK],
        "states": states,
        "context": context,
    }
    rows = {0: "rows"}
    return [
        Graph(
            encoder,
            ["photos"],
            states + context,
            _batch(["photos", *states, *context]),
            photos,
            part="encoder",
            info={**info, "input": "RGB photos (B, 3, S, S) in [0, 1], resized to S x S"},
        ),
        Graph(
            decoder,
            ["tokens", *states, *context],
            ["log_probs", *(f"{s}_out" for s in states), *(["alpha"] if attends else [])],
            {
                n: rows
                for n in ["tokens", *states, *context, "log_probs", "alpha"]
                + [f"{s}_out" for s in states]
            },
            step_inputs,
            lengths=(1, 8),
            part="decoder",
            info=info,
        ),
    ]


# ---------------------------------------------------------------------------------- char-LM


class CharLMStep(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        logits, new = self.model.run(tokens, state if len(state) > 1 else state[0])
        return (logits, *(new if isinstance(new, tuple) else (new,)))


def char_lm(predictor) -> list[Graph]:
    model = predictor.model
    rnn = model.rnn
    states = ["h", "c"] if model.cell == "lstm" else ["h"]
    vocab = len(model.chars)

    def example(batch: int, length: int | None = None) -> tuple[Tensor, ...]:
        g = _generator()
        tokens = torch.randint(0, vocab, (batch, length or 20), generator=g)
        shape = (rnn.num_layers, batch, rnn.hidden_size)
        return (tokens, *(0.5 * torch.randn(shape, generator=g) for _ in states))

    names = ["tokens", *states, "logits", *(f"{s}_out" for s in states)]
    dynamic = {n: {1: "batch"} for n in names}
    dynamic["tokens"] = dynamic["logits"] = {0: "batch", 1: "steps"}
    return [
        Graph(
            CharLMStep(exportable(model)),
            ["tokens", *states],
            ["logits", *(f"{s}_out" for s in states)],
            dynamic,
            example,
            lengths=(1, 50),
            info={
                "chars": model.chars,
                "states": states,
                "temperature": float(predictor.config.get("temperature", 1.0)),
                "input": "character ids (B, T) and the state (zeros to start)",
            },
        )
    ]


# ---------------------------------------------------------------------------------- video


def clip_classify(predictor) -> list[Graph]:
    from lstmvision.data.video import parse_size

    cfg = predictor.config
    frames, grey = int(cfg["num_frames"]), bool(cfg.get("grey"))
    h, w = parse_size(cfg.get("frame_size")) or (64, 64)
    channels = 1 if grey else 3

    def example(batch: int, length: int | None = None) -> tuple[Tensor, ...]:
        return (torch.rand(batch, length or frames, channels, h, w, generator=_generator()),)

    return [
        Graph(
            exportable(predictor.model),
            ["clips"],
            ["logits"],
            {"clips": {0: "batch", 1: "frames"}, "logits": {0: "batch"}},
            example,
            lengths=(frames, max(2, frames // 2)),
            info={
                "classes": predictor.classes(),
                "num_frames": frames,
                "frame_size": [h, w],
                "grey": grey,
                "input": "clips (B, T, C, H, W) in [0, 1], frames spread evenly over the video",
            },
        )
    ]


class Forecast(nn.Module):
    def __init__(self, model: nn.Module, future: int):
        super().__init__()
        self.model, self.future = model, future

    def forward(self, frames: Tensor) -> Tensor:
        return self.model(frames, self.future).clamp(0, 1)  # (B, T_out, C, H, W)


def next_frame(predictor) -> list[Graph]:
    from types import SimpleNamespace

    from lstmvision.data.video import parse_size
    from lstmvision.tasks.next_frame_settings import fill_old_run

    saved_then = dict.fromkeys(("frame_size", "residual", "flow", "motion_augment", "hidden_size"))
    cfg = fill_old_run(SimpleNamespace(**{**saved_then, "frame_step": 1, **predictor.config}))
    t_in, t_out = int(cfg.input_frames), int(cfg.output_frames)
    h, w = parse_size(cfg.frame_size)
    channels = predictor.model.channels

    def example(batch: int, length: int | None = None) -> tuple[Tensor, ...]:
        return (torch.rand(batch, t_in, channels, h, w, generator=_generator()),)

    return [
        Graph(
            Forecast(exportable(predictor.model), t_out),
            ["frames"],
            ["future"],
            _batch(["frames", "future"]),
            example,
            info={
                "input_frames": t_in,
                "output_frames": t_out,
                "frame_size": [h, w],
                "frame_step": int(getattr(cfg, "frame_step", 1)),
                "input": "frames (B, T_in, 1, H, W) in [0, 1], grey",
            },
        )
    ]


BUILDERS = {
    "row-lstm": classifier,
    "cnn": classifier,
    "textline": textline,
    "caption": caption,
    "char-lm": char_lm,
    "clip-classify": clip_classify,
    "next-frame": next_frame,
}


def graphs(predictor) -> list[Graph]:
    """The graphs of a loaded model (:func:`lstmvision.load`); a task without any is refused."""
    if predictor.task not in BUILDERS:
        raise ConfigError(
            f"no ONNX export for a {predictor.task!r} model (exports: {', '.join(BUILDERS)})"
        )
    return BUILDERS[predictor.task](predictor)
