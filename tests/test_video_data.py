"""Video decoding, Moving MNIST generation, UCF101 layout, bad inputs: real files from ../shared/data."""

import numpy as np
import pytest

from lstmvision.data import load_split
from lstmvision.data.moving_mnist import motion_mnist, moving_mnist
from lstmvision.data.video import (
    load_npz_sequences,
    parse_size,
    probe,
    read_clip,
    read_frames,
    ucf101_index,
    uniform_indices,
)
from lstmvision.errors import DataError


def _write_video(path, frames: int, size=(32, 48)):
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        out.start_encoding()  # writes the header even when no frame follows
        for k in range(frames):
            img = np.full((*size, 3), 40 * k % 256, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def digits(data_root):
    images, _ = load_split("mnist", data_root, "test")
    return images[:500].numpy()


def test_real_files_give_their_known_frame_counts(data_root):
    video = data_root / "video"
    assert probe(video / "vtest.avi").frames == 795
    tree = probe(video / "tree.avi")
    assert (tree.header_frames, tree.frames) == (444, 68)  # the header lies; 68 frames decode
    frames = read_frames(video / "tree.avi", size="24x32", grey=True)
    assert frames.shape == (68, 24, 32) and frames.dtype == np.uint8
    rgb = read_frames(video / "carphone_pristine.mp4", every=10, size=(36, 44))
    assert rgb.shape == (12, 36, 44, 3)  # 120 frames, every 10th


def test_clip_sampling_uniform_and_every(data_root):
    path = data_root / "video" / "ucf101_ApplyEyeMakeup_sample.avi"
    assert uniform_indices(10, 5) == [1, 3, 5, 7, 9]
    uniform = read_clip(path, 8, size="32x40", grey=True)
    every = read_clip(path, 8, sampling="every", every=3, size="32x40", grey=True)
    full = read_frames(path, size="32x40", grey=True)
    assert np.array_equal(uniform, full[uniform_indices(len(full), 8)])
    assert np.array_equal(every, full[0:24:3])


def test_bad_videos_fail_with_one_clear_line(data_root, tmp_path):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video at all" * 50)
    truncated = tmp_path / "cut.avi"
    truncated.write_bytes((data_root / "video" / "vtest.avi").read_bytes()[:150_000])
    one = _write_video(tmp_path / "one.avi", 1)
    zero = _write_video(tmp_path / "zero.avi", 0)
    cases = [
        (junk, "not a readable video"),
        (truncated, "the clip needs 16"),
        (one, "1 frame"),
        (zero, "0 frame"),
        (tmp_path / "missing.mp4", "no such video file"),
    ]
    for path, message in cases:
        with pytest.raises(DataError, match=message) as e:
            read_clip(path, 16)
        assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)
    with pytest.raises(DataError, match="the clip needs 16"):
        read_clip(one, 16, sampling="every")
    with pytest.raises(DataError, match="HEIGHTxWIDTH"):
        parse_size("48 by 64")


def test_npz_sequences_checked(data_root, tmp_path):
    seqs = load_npz_sequences(data_root / "video" / "visp_sequences_h96.npz")
    assert sorted(seqs) == ["cube", "ellipse1", "line", "mbt_cube", "mire2"]
    assert seqs["mire2"].shape == (501, 96, 128)
    bad = tmp_path / "bad.npz"
    np.savez(bad, flat=np.zeros((10, 96), np.uint8))
    with pytest.raises(DataError, match=r"bad.npz: array 'flat' has shape \(10, 96\)"):
        load_npz_sequences(bad)
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DataError, match="broken.npz: not a readable"):
        load_npz_sequences(tmp_path / "broken.npz")


def test_moving_mnist_is_deterministic_and_digits_stay_in_frame(digits):
    a = moving_mnist(digits, 6, seed=3)
    assert a.shape == (6, 20, 64, 64) and a.dtype == np.uint8
    assert np.array_equal(a, moving_mnist(digits, 6, seed=3))
    assert not np.array_equal(a, moving_mnist(digits, 6, seed=4))
    one = moving_mnist(digits, 20, seed=5, num_digits=1).astype(np.int64)
    mass = one.sum((2, 3))  # (N, T): a digit wholly in frame keeps its total ink in every frame
    assert (mass == mass[:, :1]).all() and (mass > 0).all()
    # the digits move: consecutive frames differ
    assert (np.abs(np.diff(a.astype(np.int64), axis=1)).sum((2, 3)) > 0).mean() > 0.9


def test_motion_mnist_label_is_in_the_motion(digits):
    clips, labels = motion_mnist(digits, 200, seed=0)
    assert clips.shape == (200, 10, 64, 64) and set(labels.tolist()) == {0, 1}
    cols = np.arange(64)
    centre_x = (clips.sum(2) * cols).sum(-1) / clips.sum((2, 3))  # (N, T) ink centroid column
    moves_right = centre_x[:, -1] > centre_x[:, 0]
    assert (moves_right == (labels == 1)).all()
    # whole digit in frame at every step
    mass = clips.astype(np.int64).sum((2, 3))
    assert (mass == mass[:, :1]).all()


def test_ucf101_layout_with_and_without_split_lists(data_root, tmp_path):
    sample = data_root / "video" / "ucf101_ApplyEyeMakeup_sample.avi"
    for cls in ("ApplyEyeMakeup", "Other"):
        (tmp_path / "videos" / cls).mkdir(parents=True)
        for g in (1, 8):
            (tmp_path / "videos" / cls / f"v_{cls}_g{g:02d}_c01.avi").symlink_to(sample)
    train, classes = ucf101_index(tmp_path / "videos", split="train")
    test, _ = ucf101_index(tmp_path / "videos", split="test")
    assert classes == ["ApplyEyeMakeup", "Other"]
    assert [p.name for p, _ in train] == ["v_ApplyEyeMakeup_g08_c01.avi", "v_Other_g08_c01.avi"]
    assert [label for _, label in test] == [0, 1] and all("_g01_" in p.name for p, _ in test)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 Other\n2 ApplyEyeMakeup\n")
    (lists / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 2\n")
    (lists / "testlist01.txt").write_text("Other/v_Other_g08_c01.avi\nOther/v_Other_g09_c01.avi\n")
    train, classes = ucf101_index(tmp_path / "videos", lists, "train")
    assert classes == ["Other", "ApplyEyeMakeup"] and train == [
        (tmp_path / "videos/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", 1)
    ]
    with pytest.raises(
        DataError, match="v_Other_g09_c01.avi: listed in .*testlist01.txt but missing"
    ):
        ucf101_index(tmp_path / "videos", lists, "test")
