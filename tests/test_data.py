import gzip
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from lstmvision.data import (
    dataset_info,
    load_grey_image,
    load_split,
    resolve_data_root,
    train_val_indices,
)
from lstmvision.data.idx import read_idx
from lstmvision.data.transforms import random_shift
from lstmvision.errors import DataError


@pytest.mark.parametrize(
    "name,n_train,n_test,size",
    [("mnist", 60000, 10000, 28), ("fashion-mnist", 60000, 10000, 28), ("usps", 7291, 2007, 16)],
)
def test_real_datasets_load(data_root, name, n_train, n_test, size):
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = load_split(name, data_root, split)
        assert images.shape == (n, size, size) and images.dtype == torch.uint8
        assert labels.shape == (n,) and set(labels.unique().tolist()) == set(range(10))
    info = dataset_info(name)
    train = load_split(name, data_root, "train")[0].float() / 255
    assert abs(train.mean() - info.mean) < 2e-3 and abs(train.std() - info.std) < 2e-3


def test_mnist_first_labels_are_the_official_ones(data_root):
    _, labels = load_split("mnist", data_root, "train")
    assert labels[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]


def test_data_root_precedence(monkeypatch, tmp_path):
    assert resolve_data_root(tmp_path) == tmp_path
    monkeypatch.setenv("LSTMVISION_DATA", str(tmp_path / "env"))
    assert resolve_data_root() == tmp_path / "env"


def test_missing_root_and_files(tmp_path):
    with pytest.raises(DataError, match="data root does not exist"):
        load_split("mnist", tmp_path / "nowhere", "train")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match="data root is a file, not a folder"):
        load_split("mnist", tmp_path / "afile", "train")
    with pytest.raises(DataError, match=r"mnist IDX files not found.*--download"):
        load_split("mnist", tmp_path, "train")
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        load_split("cifar", tmp_path, "train")


def _copy_mnist(data_root, tmp_path):
    (tmp_path / "mnist").mkdir()
    for f in (data_root / "mnist").iterdir():
        shutil.copy(f, tmp_path / "mnist" / f.name)
    return tmp_path / "mnist"


def test_truncated_idx_gz_named(data_root, tmp_path):
    folder = _copy_mnist(data_root, tmp_path)
    target = folder / "t10k-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:50000])
    with pytest.raises(
        DataError, match=r"t10k-images-idx3-ubyte.gz: cannot read IDX file, truncated"
    ):
        load_split("mnist", tmp_path, "test")


def test_short_idx_payload_named(data_root, tmp_path):
    folder = _copy_mnist(data_root, tmp_path)
    raw = gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    (folder / "t10k-labels-idx1-ubyte").write_bytes(raw[:-10])  # plain file, 10 labels short
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: truncated or corrupt IDX file"):
        load_split("mnist", tmp_path, "test")


def test_not_idx(tmp_path):
    (tmp_path / "x").write_bytes(b"hello world")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(tmp_path / "x")


def test_truncated_hdf5_named(data_root, tmp_path):
    (tmp_path / "usps").mkdir()
    blob = (data_root / "usps" / "usps.h5").read_bytes()
    (tmp_path / "usps" / "usps.h5").write_bytes(blob[: len(blob) // 3])
    with pytest.raises(DataError, match=r"usps.h5: not a readable USPS HDF5 file"):
        load_split("usps", tmp_path, "train")


def test_val_split_fixed_and_disjoint():
    tr, va = train_val_indices(100, 0.1)
    tr2, va2 = train_val_indices(100, 0.1)
    assert torch.equal(va, va2) and len(va) == 10 and not set(tr.tolist()) & set(va.tolist())


def test_random_shift_moves_each_image_within_bounds():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 4, 4] = 1.0
    y = random_shift(x, 2)
    assert y.shape == x.shape and torch.all(y.sum((1, 2, 3)) == 1)
    pos = y.flatten(1).argmax(1)
    rows = pos // 8
    assert rows.min() >= 2 and rows.max() <= 6 and len(set(pos.tolist())) > 5


def _digit_array(size=28):
    a = np.zeros((size, size), np.uint8)
    a[size // 4 : 3 * size // 4, size // 2 - 1 : size // 2 + 2] = 255  # a "1"
    return a


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "1"])
def test_image_modes_become_model_inputs(tmp_path, mode):
    im = Image.fromarray(255 - _digit_array(60))  # dark stroke on white paper, 60x60
    if mode == "I;16":
        im = Image.fromarray(np.asarray(im).astype(np.uint16) * 257)
    else:
        im = im.convert(mode)
    path = tmp_path / f"digit-{mode.replace(';', '')}.png"
    im.save(path)
    x = load_grey_image(path, 28, frame=20 / 28)
    assert x.shape == (28, 28) and x.dtype == torch.float32
    assert x[0].max() < 0.1 and x.max() > 0.9  # inverted: bright stroke, dark border
    ys, xs = torch.nonzero(x > 0.5, as_tuple=True)
    assert 18 <= ys.max() - ys.min() + 1 <= 21  # reframed to a 20-pixel box like MNIST


def test_tiny_and_huge_images(tmp_path):
    Image.fromarray(_digit_array(10)).save(tmp_path / "tiny.png")
    Image.fromarray(_digit_array(2000)).save(tmp_path / "huge.jpg")
    for name in ("tiny.png", "huge.jpg"):
        assert load_grey_image(tmp_path / name, 16, frame=None).shape == (16, 16)


def test_unreadable_images_named(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    Image.fromarray(_digit_array(200)).save(tmp_path / "full.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "full.jpg").read_bytes()[:300])
    for name in ("notes.png", "cut.jpg", "missing.png"):
        with pytest.raises(DataError, match=name):
            load_grey_image(tmp_path / name, 28, frame=None)
