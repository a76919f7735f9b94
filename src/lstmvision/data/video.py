"""Video files as clips of frames, decoded by PyAV (FFmpeg's libraries), streaming.

* :func:`probe`: size, frame rate, the header's frame count and the count of frames that are
  really there (by demuxing packets, without decoding: ``tree.avi``'s header says 444, it holds 68).
* :func:`iter_frames`: frames one at a time (every ``every``-th), resized and converted to grey
  ``(H, W)`` or RGB ``(H, W, 3)`` uint8 by FFmpeg's scaler; only the current frame is in memory.
* :func:`read_frames`: all (sampled) frames as one ``(N, H, W[, 3])`` array.
* :func:`read_clip`: ``T`` frames, uniformly spread over the video (``sampling="uniform"``) or
  every ``every``-th frame from the start (``"every"``); only the chosen frames are kept.
* :func:`ucf101_index`: a UCF101-layout folder (one folder of clips per class, the official
  ``classInd.txt`` / ``trainlist0N.txt`` / ``testlist0N.txt`` lists) as ``(path, label)`` pairs.
* :func:`load_npz_sequences`: grey sequences ``(T, H, W)`` uint8 from an ``.npz`` file (ViSP).

Every unreadable input raises :class:`~lstmvision.errors.DataError` with one line that starts with
the file's path: a missing, truncated or non-video file, no video stream, too few frames.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmvision.data.file_checks import file_problem, numpy_reason, one_line
from lstmvision.errors import DataError

VIDEO_SUFFIXES = (
    ".avi",
    ".mp4",
    ".mkv",
    ".mov",
    ".webm",
    ".mpg",
    ".mpeg",
    ".m4v",
    ".ogv",
    ".flv",
    ".wmv",
)


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float
    header_frames: int  # what the container says (may be 0 or wrong)
    frames: int  # packets that hold a frame (what decoding yields for intra/P-frame streams)


def _av():
    try:
        import av
    except ImportError:  # pragma: no cover - av is a dependency
        raise DataError("video decoding needs PyAV: pip install av") from None
    return av


def _open(path: str | Path):
    av = _av()
    path = Path(path)
    problem = file_problem(path, "no such video file", "a video file")
    if problem:
        raise DataError(f"{one_line(path)}: {problem}")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable video ({_reason(e)})") from None
    if not container.streams.video:
        container.close()
        raise DataError(f"{path}: has no video stream")
    if container.streams.video[0].codec_context is None:  # a header cut before the codec
        container.close()
        raise DataError(f"{path}: its video stream names no codec (truncated or corrupt header)")
    return container


def _reason(e: Exception) -> str:
    text = str(e).split(": '")[0]
    return re.sub(r"^\[Errno -?\d+\]\s*", "", text) or type(e).__name__


def probe(path: str | Path) -> VideoInfo:
    """Size, rate and frame counts of the first video stream (demuxes packets; decodes nothing)."""
    av = _av()
    with _open(path) as container:
        stream = container.streams.video[0]
        try:
            count = sum(1 for packet in container.demux(stream) if packet.size)
        except av.FFmpegError as e:
            raise DataError(f"{path}: broken video container ({_reason(e)})") from None
        fps = float(stream.average_rate) if stream.average_rate else 0.0
        return VideoInfo(str(path), stream.width, stream.height, fps, stream.frames, count)


def parse_size(size: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"48x64"`` or ``(48, 64)`` -> ``(height, width)``; ``None`` keeps the file's size."""
    if size is None or isinstance(size, tuple):
        return size
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(size))
    if not m or int(m[1]) < 1 or int(m[2]) < 1:
        raise DataError(f"frame size {size!r}: give HEIGHTxWIDTH, e.g. 48x64")
    return int(m[1]), int(m[2])


def iter_frames(
    path: str | Path,
    every: int = 1,
    size: str | tuple[int, int] | None = None,
    grey: bool = False,
    start: int = 0,
) -> Iterator[np.ndarray]:
    """Decoded frames ``start, start + every, ...`` as uint8 ``(H, W)`` (grey) or ``(H, W, 3)``
    (RGB), resized by FFmpeg to ``size`` (``HxW``) if given. Streams: one frame at a time."""
    if every < 1:
        raise DataError(f"{path}: frame step must be >= 1, not {every}")
    av = _av()
    hw = parse_size(size)
    fmt = "gray" if grey else "rgb24"
    scale = {} if hw is None else {"height": hw[0], "width": hw[1]}
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoded = 0
        try:
            for i, frame in enumerate(container.decode(stream)):
                decoded = i + 1
                if i >= start and (i - start) % every == 0:
                    yield frame.to_ndarray(format=fmt, **scale)  # (H, W) or (H, W, 3)
        except av.FFmpegError as e:
            reason = _reason(e)
            raise DataError(f"{path}: decoding failed at frame {decoded + 1} ({reason})") from None


def read_frames(
    path: str | Path, every: int = 1, size=None, grey: bool = False, max_frames: int | None = None
) -> np.ndarray:
    """Every ``every``-th frame (at most ``max_frames``) as one uint8 array ``(N, H, W[, 3])``."""
    frames = []
    for frame in iter_frames(path, every, size, grey):
        frames.append(frame)
        if max_frames is not None and len(frames) >= max_frames:
            break
    if not frames:
        raise DataError(f"{path}: holds no decodable frame")
    return np.stack(frames)


def uniform_indices(total: int, num_frames: int) -> list[int]:
    """``num_frames`` indices spread evenly over ``range(total)`` (the centres of equal
    segments)."""
    return [int((k + 0.5) * total / num_frames) for k in range(num_frames)]


def read_clip(
    path: str | Path,
    num_frames: int,
    sampling: str = "uniform",
    every: int = 1,
    size=None,
    grey: bool = False,
) -> np.ndarray:
    """``num_frames`` frames ``(T, H, W[, 3])`` uint8 of one video.

    ``sampling="uniform"``: spread evenly over the whole video (the frame count comes from
    :func:`probe`; if fewer frames decode than packets exist, the clip is re-picked from those);
    ``"every"``: frames ``0, every, 2*every, ...``. A video shorter than the clip is an error.
    """
    if num_frames < 1:
        raise DataError(f"{path}: a clip needs at least 1 frame, not {num_frames}")
    if sampling == "every":
        frames = read_frames(path, every, size, grey, max_frames=num_frames)
        if len(frames) < num_frames:
            raise DataError(
                f"{path}: {len(frames)} frame(s) at step {every}; the clip needs {num_frames}"
            )
        return frames
    if sampling != "uniform":
        raise DataError(f"{path}: sampling must be uniform or every, not {sampling!r}")
    total = probe(path).frames
    if total < num_frames:
        raise DataError(f"{path}: {total} frame(s); the clip needs {num_frames}")
    wanted = uniform_indices(total, num_frames)
    chosen, decoded = {}, 0
    for i, frame in enumerate(iter_frames(path, 1, size, grey)):
        decoded = i + 1
        if i in wanted:
            chosen[i] = frame
        if i >= wanted[-1]:
            break
    if len(chosen) < num_frames:  # fewer frames decode than packets were counted
        if decoded < num_frames:
            raise DataError(f"{path}: {decoded} decodable frame(s); the clip needs {num_frames}")
        frames = read_frames(path, 1, size, grey)
        return frames[uniform_indices(len(frames), num_frames)]
    return np.stack([chosen[i] for i in wanted])


def frames_from_memory(frames, size=None, grey: bool = False, name="frames", pick=None):
    """Frames ``(N, H, W[, 3])`` uint8 of an in-memory video, as a decoded file's would be: an
    array or tensor ``(T, H, W)``, ``(T, H, W, 3)`` or ``(T, C, H, W)`` (uint8, or floats in
    [0, 1]), or a list of images; each frame converted to grey or RGB and resized to ``size``
    (height, width). ``pick``: the indices kept (default: all)."""
    from PIL import Image

    from lstmvision.data.images import image_from_array

    if not isinstance(frames, (list, tuple)) and getattr(frames, "ndim", 0) not in (3, 4):
        shape = tuple(getattr(frames, "shape", ()))
        raise DataError(f"{name}: frames must be (T, H, W[, C]) or (T, C, H, W), not {shape}")
    out = []
    for i in range(len(frames)) if pick is None else pick:
        f = frames[i]
        im = f if isinstance(f, Image.Image) else image_from_array(f, name)
        im = im.convert("L" if grey else "RGB")
        if size is not None:
            im = im.resize((size[1], size[0]), Image.BILINEAR)
        out.append(np.asarray(im, dtype=np.uint8))
    if not out:
        raise DataError(f"{name}: no frames")
    return np.stack(out)


def clip_from_frames(frames, num_frames: int, size=None, grey: bool = False, name="frames"):
    """``num_frames`` frames picked evenly (as ``read_clip``'s uniform sampling) from an
    in-memory video (:func:`frames_from_memory`)."""
    count = len(frames) if getattr(frames, "ndim", 3) in (3, 4) else 0
    if count < num_frames:
        raise DataError(f"{name}: {count} frame(s); the clip needs {num_frames}")
    return frames_from_memory(frames, size, grey, name, uniform_indices(count, num_frames))


def find_videos(path: str | Path) -> list[Path]:
    """A video file itself, or the video files under a folder (recursively, sorted)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such video file or folder")
    videos = sorted(
        p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
    )
    if not videos:
        raise DataError(f"{path}: holds no video file ({', '.join(VIDEO_SUFFIXES[:4])}, ...)")
    return videos


# what np.load raises for a broken .npz (NotImplementedError: a zip version it does not know)
_NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError)


def load_npz_sequences(path: str | Path) -> dict[str, np.ndarray]:
    """Grey sequences from an ``.npz`` file: each array uint8 ``(T, H, W)``, ``T >= 2``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: sequence file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            seqs = {name: z[name] for name in z.files}
    except _NPZ_ERRORS as e:
        raise DataError(f"{path}: not a readable .npz file ({numpy_reason(e)})") from None
    if not seqs:
        raise DataError(f"{path}: holds no array")
    for name, seq in seqs.items():
        if seq.ndim != 3 or seq.shape[0] < 2:
            raise DataError(
                f"{path}: array {name!r} has shape {seq.shape}; expected (T>=2, H, W) grey frames"
            )
        if seq.dtype != np.uint8:
            raise DataError(f"{path}: array {name!r} is {seq.dtype}; expected uint8 grey levels")
    return seqs


# ----------------------------------------------------------------------------------------- UCF101


_GROUP = re.compile(r"_g(\d+)_c\d+", re.IGNORECASE)


def ucf101_index(
    videos: str | Path, lists: str | Path | None = None, split: str = "train", fold: int = 1
) -> tuple[list[tuple[Path, int]], list[str]]:
    """``([(clip path, class index), ...], class names)`` of a UCF101-layout folder.

    ``videos`` holds one folder per class (``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi``).
    ``lists`` is the folder of the official ``classInd.txt`` ("1 ApplyEyeMakeup") and
    ``trainlist0{fold}.txt`` / ``testlist0{fold}.txt`` ("ApplyEyeMakeup/v_..._g08_c01.avi [label]");
    without it (or without those files) the classes are the sorted folder names and the split
    follows UCF101's rule for fold 1: groups 1-7 are the test clips, groups 8-25 the training
    clips, so one person's clips never sit in both.
    """
    videos = Path(videos)
    if not videos.is_dir():
        raise DataError(f"{videos}: no such folder (expected one sub-folder of clips per class)")
    if split not in ("train", "test"):
        raise DataError(f"{videos}: split must be train or test, not {split!r}")
    lists = Path(lists) if lists is not None else None
    class_file = lists / "classInd.txt" if lists is not None else None
    if class_file is not None and class_file.is_file():
        classes = []
        for number, line in enumerate(_list_lines(class_file), 1):
            fields = line.split()
            if fields and len(fields) < 2:
                raise DataError(f"{class_file}: line {number} is not `INDEX CLASS_NAME`")
            classes += fields[1:2]
    else:
        classes = sorted(p.name for p in videos.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{videos}: holds no class folder")
    split_file = lists / f"{split}list{fold:02d}.txt" if lists is not None else None
    if split_file is not None and split_file.is_file():
        names = [line.split()[0] for line in _list_lines(split_file) if line.strip()]
    else:
        names = [
            f"{c}/{p.name}"
            for c in classes
            if (videos / c).is_dir()
            for p in sorted((videos / c).iterdir())
            if p.suffix.lower() in VIDEO_SUFFIXES
        ]
        names = [n for n in names if _in_split(n, split)]
    index = {c: k for k, c in enumerate(classes)}
    items = []
    for name in names:
        cls = name.split("/")[0]
        if cls not in index:
            raise DataError(f"{split_file or videos}: clip {name} is of an unknown class {cls!r}")
        path = videos / name
        problem = file_problem(path, "missing", "a video file")
        if problem:
            raise DataError(f"{path}: listed in {split_file or videos} but {problem}")
        items.append((path, index[cls]))
    return items, classes


def _list_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable UTF-8 list ({e})") from None


def _in_split(name: str, split: str) -> bool:
    m = _GROUP.search(name)
    test = m is not None and int(m[1]) <= 7
    return test if split == "test" else not test
