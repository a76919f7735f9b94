"""Running an exported graph with ONNX Runtime, without torch: sessions, the graph's metadata,
and the decoding that stays outside the graphs (CTC best path for text lines).

Nothing here imports torch: a server that only runs the graphs needs numpy and onnxruntime.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lstmvision.errors import ConfigError, LstmvisionError

INSTALL = "pip install lstmvision[export]"
META_KEY = "lstmvision"  # the metadata entry: JSON {"task", "part", "source", "info"}


def require(*modules: str) -> None:
    """Import ``modules`` (default: onnx and onnxruntime) or say in one line how to get them."""
    import importlib

    missing = []
    for name in modules or ("onnx", "onnxruntime"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise LstmvisionError(
            f"ONNX export and its checks need {' and '.join(missing)}: `{INSTALL}`"
        )


def session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session of the graph at ``path``; ``threads``: intra-op threads
    (None: ONNX Runtime's default, one per core)."""
    require("onnxruntime")
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such ONNX file")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LstmvisionError(f"{path}: ONNX Runtime cannot load it ({first})") from None


def metadata(sess) -> dict:
    """What ``lstmvision export`` stored in the graph: ``{"task", "part", "source", "info"}``."""
    text = sess.get_modelmeta().custom_metadata_map.get(META_KEY)
    if text is None:
        raise ConfigError("this ONNX graph was not written by `lstmvision export` (no metadata)")
    return json.loads(text)


def ctc_greedy_texts(
    logits: np.ndarray, lengths: Sequence[int] | np.ndarray, charset: str, blank: int = 0
) -> list[str]:
    """Best-path texts of the text-line graph's outputs: ``logits (T, B, C)`` and ``lengths
    (B,)``. Per line: the most probable class at each of its first ``lengths[b]`` frames, repeats
    merged, blanks dropped; class ``i`` is ``charset[i - 1]`` (as
    :func:`lstmvision.nn.ctc.greedy_texts`)."""
    best = np.asarray(logits).argmax(-1).T  # (B, T)
    texts = []
    for path, length in zip(best.tolist(), np.asarray(lengths).tolist()):
        chars, previous = [], blank
        for s in path[: int(length)]:
            if s != blank and s != previous and 0 < s <= len(charset):
                chars.append(charset[s - 1])
            previous = s
        texts.append("".join(chars))
    return texts


def transcribe(sess, lines: Sequence[np.ndarray]) -> list[str]:
    """Greedy texts of line images ``(H, W)`` (floats in [0, 1], ink bright, the graph's height;
    as :func:`lstmvision.data.lines.line_tensor` gives them), read as one right-padded batch."""
    info = metadata(sess)["info"]
    widths = np.array([line.shape[1] for line in lines], dtype=np.int64)
    images = np.zeros((len(lines), 1, info["height"], int(widths.max())), dtype=np.float32)
    for b, line in enumerate(lines):
        images[b, 0, :, : line.shape[1]] = line
    logits, lengths = sess.run(["logits", "lengths"], {"images": images, "widths": widths})
    return ctc_greedy_texts(logits, lengths, info["charset"], info.get("blank", 0))
