"""Video decoding, Moving MNIST generation, frame windows, UCF101 layout, bad inputs: real files
from ../shared/data."""

import numpy as np
import pytest
import torch

from lstmvision.data import load_split
from lstmvision.data.frame_windows import (
    SOURCE_SCALE,
    MotionWindows,
    Windows,
    real_sequences,
    time_split,
    window_splits,
)
from lstmvision.data.moving_mnist import (
    SPLIT_SEEDS,
    motion_mnist,
    moving_mnist,
    moving_mnist_splits,
)
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


def test_motion_windows_follow_a_camera_path():
    torch.manual_seed(0)
    # a still scene at twice the output size
    still_frames = (torch.rand(1, 32, 48) * 255).to(torch.uint8).repeat(12, 1, 1)
    still = MotionWindows([still_frames], 6, (16, 24), strength=1.0, still=1.0)
    x = still[0]
    assert x.shape == (6, 1, 16, 24) and 0 <= x.min() and x.max() <= 1
    assert torch.allclose(x, x[:1].expand_as(x))  # the crop does not move
    moving = MotionWindows([still_frames], 6, (16, 24), strength=1.0, still=0.0)
    assert len(moving) == 7
    frames = torch.stack([moving[i] for i in range(7)])
    assert (frames[:, 1:] - frames[:, :1]).abs().mean() > 0.01  # the view changes along the window
    for _ in range(20):  # the crop's centre stays on the source frame
        centre, angle, scale = moving.path((32, 48))
        assert centre.shape == (6, 2) and angle.shape == scale.shape == (6,)
        assert centre[:, 0].min() >= 0 and centre[:, 0].max() <= 48 and centre[:, 1].max() <= 32


def test_windows_of_visp_split_by_sequence_and_of_one_video_by_time(data_root):
    splits = window_splits("visp", data_root, (24, 32), length=20)
    # train mire2 (501 frames), mbt_cube (218), line (33); validation ellipse1 (50); test cube (80)
    counts = {s: len(w) for s, w in splits.items()}
    assert counts == {"train": 482 + 199 + 14, "val": 31, "test": 61}
    assert splits["test"][0].shape == (20, 1, 24, 32) and type(splits["train"]) is Windows
    moving = window_splits("visp", data_root, (24, 32), length=20, motion=1.0, limit_train=5)
    assert isinstance(moving["train"], MotionWindows) and len(moving["train"]) == 5
    assert moving["train"].seqs[0].shape[1:] == (24 * SOURCE_SCALE, 32 * SOURCE_SCALE)
    # evaluation windows stay the plain frames (read at twice the size and resized)
    assert (moving["test"][3] - splits["test"][3]).abs().mean() < 0.02
    clip = data_root / "video" / "carphone_pristine.mp4"  # 120 frames: 96 / 12 / 12 in time
    seqs = real_sequences(str(clip), data_root, (16, 16))
    assert [len(s) for split in ("train", "val", "test") for s in seqs[split]] == [96, 12, 12]
    assert {k: len(v) for k, v in time_split(torch.arange(10)).items()} == {
        "train": 8,
        "val": 1,
        "test": 1,
    }
    with pytest.raises(DataError, match="window needs 20"):
        window_splits(str(clip), data_root, (16, 16), length=20)


def test_moving_mnist_splits_fixed_evaluation_fresh_training(data_root):
    sets = moving_mnist_splits(data_root, 6, train_size=4, val_size=3, test_size=2, limit_train=50)
    assert {s: len(d) for s, d in sets.items()} == {"train": 4, "val": 3, "test": 2}
    assert len(sets["train"].digits) == 50 and not sets["train"].fixed
    again = moving_mnist_splits(data_root, 6, train_size=4, val_size=3, test_size=2)
    for split in ("val", "test"):  # fixed by SPLIT_SEEDS
        assert sets[split].seed == SPLIT_SEEDS[split] and torch.equal(
            sets[split][1], again[split][1]
        )
    first = sets["train"][0]
    sets["train"].set_epoch(1)
    assert first.shape == (6, 1, 64, 64) and not torch.equal(first, sets["train"][0])
