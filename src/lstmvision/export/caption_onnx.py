r"""Caption photos with the captioner's two ONNX graphs and nothing but numpy, Pillow and
onnxruntime: torch is not imported.

``lstmvision export caption-flickr8k --out caption.onnx`` writes ``caption.encoder.onnx`` and
``caption.decoder.onnx``; then::

    python -m lstmvision.export.caption_onnx caption.onnx photo.jpg [more.jpg ...] [--beam 3]

or in Python ``OnnxCaptioner("caption.onnx").caption("photo.jpg")``.

The photo is read as :func:`lstmvision.data.captions.load_photo` reads it (RGB, the whole photo
resized to the encoder's square, bicubic), the encoder graph gives the decoder's first state and
the fixed context, and :func:`beam_search` runs the decoder graph one word at a time. The search
is :func:`lstmvision.nn.beam.beam_search` line by line in numpy (its docstring gives the rules:
``k`` best extensions per step by summed log-probability, a sequence that ends is set aside and
takes its place for good, the best finished one by the length-normalised score
:math:`\hat s = \sum_t \log p(y_t) / (n + 1)^{\alpha}`), with the settings the graph carries
(width, ``max_len``, ``alpha``, banned words), so that it gives the caption torch gives.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from lstmvision.errors import ConfigError, DataError, LstmvisionError
from lstmvision.export.runtime import metadata, session

Step = Callable[[np.ndarray, tuple, tuple], tuple[np.ndarray, tuple]]


def graph_files(path: str | Path) -> tuple[Path, Path]:
    """The encoder and decoder graphs of ``path``: the ``--out`` given to ``lstmvision export``
    (``NAME.onnx``) or either of the two files (``NAME.encoder.onnx``, ``NAME.decoder.onnx``)."""
    path = Path(path)
    stem = path.name[: -len(".onnx")] if path.name.endswith(".onnx") else path.name
    for part in (".encoder", ".decoder"):
        stem = stem[: -len(part)] if stem.endswith(part) else stem
    return path.with_name(f"{stem}.encoder.onnx"), path.with_name(f"{stem}.decoder.onnx")


# ---------------------------------------------------------------------------------------- photos


def _grey(im: Image.Image) -> np.ndarray:
    """16-bit, 32-bit and float greys -> uint8 ``(H, W)``, rescaled as
    :func:`lstmvision.data.images.to_grey` does (16-bit by 65535, others by 255 unless above)."""
    a = np.asarray(im, dtype=np.float64)
    top = 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
    return (np.clip(a / top, 0, 1) * 255).round().astype(np.uint8)


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB, as :func:`lstmvision.data.captions.to_rgb`: transparent pixels
    over white, high-depth greys rescaled."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return Image.fromarray(_grey(im)).convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        grey = im.mode == "LA"
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        composited = Image.alpha_composite(white, im)
        return composited.convert("L" if grey else "RGB").convert("RGB")
    return im.convert("RGB")


def load_photo(photo, size: int) -> np.ndarray:
    """A photo file (or a PIL image, or an ``(H, W, 3)`` / ``(H, W)`` uint8 array) as the
    encoder's input: uint8 ``(3, size, size)``."""
    if isinstance(photo, np.ndarray):
        im = Image.fromarray(np.ascontiguousarray(photo))
    elif isinstance(photo, Image.Image):
        photo.load()
        im = photo.copy()
    else:
        try:
            with Image.open(photo) as opened:
                opened.load()  # decode now: a truncated file fails here
                im = opened.copy()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise DataError(f"{photo}: not a readable image ({e})") from None
    im = to_rgb(im).resize((size, size), Image.BICUBIC, reducing_gap=3.0)
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)  # (3, size, size)


# ---------------------------------------------------------------------------------- beam search


def _mask(
    log_probs: np.ndarray, t: int, max_len: int, end: int, banned: Sequence[int], min_len: int
) -> np.ndarray:
    log_probs = log_probs.astype(np.float32, copy=True)
    if banned:
        log_probs[:, list(banned)] = -np.inf
    if t < min_len - 1 < max_len - 1:  # too early to end
        log_probs[:, end] = -np.inf
    if t == max_len - 1:  # the last step may only end the sequence
        keep = log_probs[:, end].copy()
        log_probs.fill(-np.inf)
        log_probs[:, end] = keep
    return log_probs


def beam_search(
    step: Step,
    state: tuple,
    context: tuple,
    beam: int,
    start: int,
    end: int,
    max_len: int,
    banned: Sequence[int] = (),
    alpha: float = 0.0,
    min_len: int = 1,
) -> list[tuple[list[int], float, float]]:
    """Per input: ``(tokens without <end>, summed log-probability, normalised score)``; ``step``
    maps ``(tokens (N,), state, context)`` to ``(log_probs (N, V), state)``, every array's
    first axis the ``N = B * beam`` rows (row ``b * beam + j``: beam ``j`` of input ``b``)."""
    if beam < 1:
        raise ConfigError(f"--beam {beam}: the beam width must be at least 1")
    B, K = (state[0] if state else context[0]).shape[0], beam
    state = tuple(np.repeat(s, K, axis=0) for s in state)  # (B*K, ...)
    context = tuple(np.repeat(c, K, axis=0) for c in context)
    tokens = np.full(B * K, start, dtype=np.int64)
    scores = np.full((B, K), -np.inf, dtype=np.float32)
    scores[:, 0] = 0.0  # one live beam to start from
    live = np.full(B, K)  # how many extensions each input may keep at this step
    history = np.zeros((B, K, 0), dtype=np.int64)  # (B, K, t) tokens of each beam
    offsets = np.arange(B)[:, None] * K  # (B, 1)
    rows = np.arange(B)[:, None]
    best = [(-np.inf, 0.0, [])] * B  # (normalised, score, tokens)
    for t in range(max_len):
        log_probs, state = step(tokens, state, context)
        log_probs = _mask(log_probs, t, max_len, end, banned, min_len)
        V = log_probs.shape[-1]
        total = (scores[:, :, None] + log_probs.reshape(B, K, V)).reshape(B, K * V)
        n = min(K, K * V)
        index = np.argsort(-total, axis=1, kind="stable")[:, :n]  # (B, K) best extensions
        top = np.take_along_axis(total, index, axis=1)
        parent, word = index // V, index % V  # beam it extends, token it adds
        chosen = (np.arange(n)[None] < live[:, None]) & np.isfinite(top)
        flat_parent = (parent + offsets).reshape(-1)  # (B*K,) rows of the extended beams
        ended = chosen & (word == end)
        for b, j in zip(*np.nonzero(ended)):
            normalized = float(top[b, j]) / float(t + 1) ** alpha
            if normalized > best[b][0]:
                best[b] = (normalized, float(top[b, j]), history[b, parent[b, j]].tolist())
        going = chosen & (word != end)
        live = live - ended.sum(1)  # each finished sequence takes one place for good
        scores = np.where(going, top, np.float32(-np.inf)).astype(np.float32)
        history = np.concatenate([history[rows, parent], word[:, :, None]], axis=2)
        if not going.any():
            break
        state = tuple(s[flat_parent] for s in state)
        tokens = word.reshape(-1).astype(np.int64)
    return [(b[2], b[1], b[0]) for b in best]


# ------------------------------------------------------------------------------------ captioner


class OnnxCaptioner:
    """The encoder and decoder graphs of an exported captioner, in ONNX Runtime sessions with
    ``threads`` intra-op threads each (None: ONNX Runtime's default)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        encoder, decoder = graph_files(path)
        for file in (encoder, decoder):
            if not file.is_file():
                raise ConfigError(
                    f"{file}: not found (`lstmvision export CAPTIONER --out {Path(path).name}` "
                    "writes NAME.encoder.onnx and NAME.decoder.onnx)"
                )
        self.encoder, self.decoder = session(encoder, threads), session(decoder, threads)
        meta = metadata(self.decoder)
        if meta.get("task") != "caption":
            raise ConfigError(f"{decoder}: a {meta.get('task')!r} graph, not a captioner's")
        self.info = meta["info"]
        self.words = self.info["words"]
        self.states, self.context = self.info["states"], self.info["context"]

    def encode(self, photos: np.ndarray) -> tuple[tuple, tuple]:
        """uint8 photos ``(B, 3, S, S)`` -> ``(state, context)`` before the first word."""
        pixels = photos.astype(np.float32) / 255
        out = self.encoder.run(self.states + self.context, {"photos": pixels})
        return tuple(out[: len(self.states)]), tuple(out[len(self.states) :])

    def step(self, tokens: np.ndarray, state: tuple, context: tuple) -> tuple[np.ndarray, tuple]:
        """One word for every row: ``(log_probs (N, V), state)``."""
        feed = {"tokens": tokens, **dict(zip(self.states, state))}
        feed.update(zip(self.context, context))
        names = ["log_probs", *(f"{s}_out" for s in self.states)]
        log_probs, *state = self.decoder.run(names, feed)
        return log_probs, tuple(state)

    def caption(self, photo, beam: int | None = None) -> str:
        """The caption of one photo (a file, a PIL image or an array), beam width ``beam``
        (default: the model's recipe)."""
        pixels = load_photo(photo, self.info["image_size"])[None]  # (1, 3, S, S)
        return self.caption_pixels(pixels, beam)

    def caption_pixels(self, pixels: np.ndarray, beam: int | None = None) -> str:
        """The caption of one photo given as :func:`load_photo` gives it, ``(1, 3, S, S)``."""
        info = self.info
        state, context = self.encode(pixels)
        ((tokens, _, _),) = beam_search(
            self.step,
            state,
            context,
            int(info["beam"] if beam is None else beam),
            info["start"],
            info["end"],
            info["max_len"],
            info["banned"],
            info["length_penalty"],
            info["min_len"],
        )
        return " ".join(self.words[t] for t in tokens)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lstmvision.export.caption_onnx",
        description="Caption photos with an exported captioner (ONNX Runtime, no torch).",
    )
    parser.add_argument("model", help="the --out of `lstmvision export` (NAME.onnx)")
    parser.add_argument("photos", nargs="+", help="photo files")
    parser.add_argument("--beam", type=int, default=None, help="beam width (default: recipe)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    args = parser.parse_args(argv)
    try:
        captioner = OnnxCaptioner(args.model, args.threads)
        for photo in args.photos:
            text = captioner.caption(photo, args.beam)
            line = json.dumps({"image": photo, "caption": text}) if args.json else text
            print(line if args.json else f"{photo}\t{line}")
    except LstmvisionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
