"""CNNs: LeNet-5's true parameter counts, shapes and stages of every registered CNN, the pooling
layers, classifier resets, and the pretrained-weights path (with torchvision's download faked)."""

import pytest
import torch
import torchvision
from torch import nn

from lstmvision.errors import ConfigError
from lstmvision.models import get_model
from lstmvision.models.cnn import format_summary, layer_summary
from lstmvision.nn.pooling import SumPool2d, TrainableSubsampling

SMALL = ["lenet5", "lenet5-modern", "resnet8-small", "resnet20-small", "vgg-small", "alexnet-small"]
# (name, number of stages, feature width) for torchvision's families
TORCHVISION = [
    ("alexnet", 3, 256 * 6 * 6),
    ("vgg11", 5, 512 * 7 * 7),
    ("vgg13", 5, 512 * 7 * 7),
    ("vgg16", 5, 512 * 7 * 7),
    ("vgg19", 5, 512 * 7 * 7),
    ("resnet18", 5, 512),
    ("resnet34", 5, 512),
    ("resnet50", 5, 2048),
]


def test_lenet5_summary_gives_the_true_parameter_counts():
    rows = layer_summary(get_model("lenet5"), (1, 1, 32, 32))
    assert [(name, count) for name, _, count in rows] == list(
        zip(["c1", "s2", "c3", "s4", "c5", "f6", "output"], [156, 12, 2416, 32, 48120, 10164, 850])
    )
    assert [shape for _, shape, _ in rows][:5] == [
        (1, 6, 28, 28),
        (1, 6, 14, 14),
        (1, 16, 10, 10),
        (1, 16, 5, 5),
        (1, 120, 1, 1),
    ]
    table = format_summary(rows)
    assert "48,120" in table and table.splitlines()[-1].split() == ["total", "61,750"]


def test_lenet5_pads_mnist_to_32_and_refuses_larger_images():
    model = get_model("lenet5").eval()
    x = torch.rand(2, 1, 28, 28)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    assert torch.allclose(model(x), model(padded))
    with pytest.raises(ValueError, match="up to 32x32"):
        model(torch.rand(1, 1, 33, 32))


def test_lenet5_modern_uses_relu_and_max_pooling():
    model = get_model("lenet5-modern", dropout=0.5)
    assert isinstance(model.s2, nn.MaxPool2d) and model.act is torch.relu
    assert sum(p.numel() for p in model.parameters()) == 61750 - 12 - 32


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_small_cnn_shapes(name, channels, size):
    model = get_model(name, num_classes=7, in_channels=channels)
    features = model.forward_features(torch.rand(2, channels, size, size))
    assert features.shape == (2, model.num_features)
    assert model.forward_head(features).shape == (2, 7)


@pytest.mark.parametrize(
    "name,n_stages,width", TORCHVISION, ids=[name for name, _, _ in TORCHVISION]
)
def test_torchvision_cnn_on_small_grey_images(name, n_stages, width):
    model = get_model(name, num_classes=5, in_channels=1).eval()
    assert model.num_features == width and len(model.stages()) == n_stages
    x = torch.rand(1, 1, 28, 28)  # upsampled to the architecture's minimum size
    with torch.no_grad():
        out = model(x)
        assert out.shape == (1, 5)
        assert torch.allclose(
            out, model.net(model.prepare(x)), atol=1e-5
        )  # our stages == torchvision's forward
    _assert_stages_and_head_hold_every_parameter(model)


def test_input_size_upsamples_keeping_the_aspect_ratio():
    model = get_model("resnet18", in_channels=1, input_size=64)
    assert model.prepare(torch.rand(1, 1, 28, 42)).shape == (1, 3, 64, 96)  # grey repeated to RGB
    assert model.prepare(torch.rand(1, 1, 70, 80)).shape == (1, 3, 70, 80)
    assert get_model("alexnet").input_size == 63 and get_model("resnet50").input_size == 1


def _assert_stages_and_head_hold_every_parameter(model):
    stage_params = {id(p) for stage in model.stages() for p in stage.parameters()}
    head_params = {id(p) for p in model.get_classifier().parameters()}
    assert stage_params and head_params and stage_params.isdisjoint(head_params)
    assert stage_params | head_params == {id(p) for p in model.parameters()}


@pytest.mark.parametrize("name", SMALL)
def test_stages_and_head_hold_every_parameter(name):
    _assert_stages_and_head_hold_every_parameter(get_model(name))


@pytest.mark.parametrize("name", SMALL[2:])
def test_small_cnn_stages_chain_stem_first(name):
    model = get_model(name, in_channels=1).eval()
    stem = model.stages()[0]
    assert isinstance(stem[0], nn.Conv2d) and stem[0].in_channels == 1
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model.forward_features(x), model.feature_map(x).mean((2, 3)))


@pytest.mark.parametrize("name", ["lenet5", "resnet20-small", "vgg-small", "alexnet", "resnet18"])
def test_reset_classifier_changes_the_output_size(name):
    model = get_model(name, num_classes=10, in_channels=1)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    model.reset_classifier(4)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 4)


def test_bad_channel_arguments_are_clear_errors():
    with pytest.raises(ConfigError, match="or 3 input channels"):
        get_model("resnet18", in_channels=2)
    with pytest.raises(ConfigError, match="mean has 3 values"):
        get_model("vgg-small", mean=(0.5, 0.5, 0.5))


def test_pretrained_weights_pass_through_keep_the_rgb_stem(monkeypatch):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18().state_dict()
    calls = []

    def fake_download(weights, **kwargs):
        calls.append(weights)
        return reference

    monkeypatch.setattr(torchvision.models.ResNet18_Weights, "get_state_dict", fake_download)
    model = get_model("resnet18", weights="DEFAULT", num_classes=10, in_channels=1)
    assert calls == [torchvision.models.ResNet18_Weights.IMAGENET1K_V1]
    assert (
        torch.equal(model.net.conv1.weight, reference["conv1.weight"])
        and model.net.conv1.in_channels == 3
    )
    assert torch.equal(model.net.layer4[1].conv2.weight, reference["layer4.1.conv2.weight"])
    assert model.net.fc.out_features == 10 and model(torch.rand(2, 1, 32, 32)).shape == (2, 10)


def test_sum_pool_is_average_times_window_area():
    x = torch.randn(2, 3, 8, 9)
    assert torch.allclose(SumPool2d(2)(x), nn.AvgPool2d(2)(x) * 4, atol=1e-6)
    assert torch.allclose(SumPool2d(3, stride=1)(x), nn.AvgPool2d(3, stride=1)(x) * 9, atol=1e-5)


def test_trainable_subsampling_is_coefficient_times_window_sum_plus_bias():
    layer = TrainableSubsampling(3)
    assert sum(p.numel() for p in layer.parameters()) == 2 * 3
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([1.0, -2.0, 0.5]))
        layer.bias.copy_(torch.tensor([0.0, 1.0, -3.0]))
    x = torch.randn(2, 3, 6, 4)
    window_sums = x.view(2, 3, 3, 2, 2, 2).sum((3, 5))  # (B, C, H/2, 2, W/2, 2) -> (B, C, H/2, W/2)
    expected = window_sums * layer.weight.view(1, 3, 1, 1) + layer.bias.view(1, 3, 1, 1)
    assert torch.allclose(layer(x), expected, atol=1e-6)
