"""Registry-driven: every registered model runs forward and backward, every parameter learns."""

import pytest
import torch

from lstmvision.models import get_model, list_models

CAPTION_WORDS = ["<pad>", "<start>", "<end>", "<unk>", "dog", "runs"]
# one small configuration and input shape per registered model; a new model must add its own
EXAMPLES = {
    "row-lstm": [
        (
            dict(
                num_classes=10,
                image_size=12,
                hidden_size=8,
                cell=cell,
                reading=reading,
                num_layers=2,
                bidirectional=bi,
            ),
            (3, 1, 12, 12),
        )
        for cell in ("rnn", "lstm", "gru")
        for reading, bi in (
            ("rows", True),
            ("columns", False),
            ("rows+columns", True),
            ("pixels", False),
            ("permuted-pixels", True),
        )
    ],
    "lenet5": [
        (dict(num_classes=10), (2, 1, 28, 28)),
        (dict(num_classes=4, in_channels=3), (2, 3, 32, 32)),
    ],
    "lenet5-modern": [(dict(num_classes=10, dropout=0.5), (2, 1, 28, 28))],
    **{
        name: [
            (dict(num_classes=10), (2, 1, 28, 28)),
            (dict(num_classes=5, in_channels=3), (2, 3, 32, 32)),
        ]
        for name in ("resnet8-small", "resnet20-small", "vgg-small", "alexnet-small")
    },
    # torchvision's ImageNet CNNs at their smallest: grey 28 px, upsampled to the minimum inside
    **{
        name: [(dict(num_classes=10, in_channels=1), (2, 1, 28, 28))]
        for name in (
            "alexnet",
            "vgg11",
            "vgg13",
            "vgg16",
            "vgg19",
            "resnet18",
            "resnet34",
            "resnet50",
        )
    },
    "efficientnet-lite0": [
        (dict(weights=None, num_classes=10, in_channels=1, input_size=32), (2, 1, 20, 20))
    ],
    "crnn": [
        (
            dict(charset="abc", height=32, channels=(4, 4, 8, 8), hidden_size=6, num_layers=2),
            (2, 1, 32, 37),
        )
    ],
    **{
        name: [
            (
                dict(
                    words=CAPTION_WORDS,
                    cell=cell,
                    encoder_weights=None,
                    image_size=64,
                    hidden_size=8,
                    embed_size=6,
                ),
                (2, 3, 64, 64),
            )
            for cell in ("lstm", "gru")
        ]  # 64 px: a 2x2 grid to attend over
        for name in ("show-and-tell", "show-attend-tell")
    },
    # video: clips / frame sequences (B, T, C, H, W)
    "lrcn": [
        (dict(num_classes=3, backbone="lenet5-modern", hidden_size=6), (2, 3, 1, 16, 16)),
        (
            dict(num_classes=2, backbone="resnet8-small", in_channels=3, cell="gru", hidden_size=5),
            (2, 2, 3, 12, 12),
        ),
    ],
    "frame-average": [(dict(num_classes=3, backbone="resnet8-small"), (2, 3, 1, 12, 12))],
    "convlstm-forecaster": [
        (
            dict(hidden_sizes=[4, 3], kernel_size=3, patch=2, peephole=True, output_frames=3),
            (2, 4, 1, 8, 8),
        ),
        (  # the reference path, with layer-normalised cells
            dict(hidden_sizes=[4], patch=2, norm=True, output_frames=2, implementation="equations"),
            (2, 3, 1, 8, 8),
        ),
    ],
    "cnn-lstm-forecaster": [
        (
            dict(frame_size=(16, 8), width=4, depth=2, hidden_size=6, output_frames=2),
            (2, 3, 1, 16, 8),
        )
    ],
    "motion-lstm-forecaster": [(dict(hidden_size=5, output_frames=3), (2, 4, 1, 16, 20))],
    # text: token ids (B, T) (see INPUTS), adding-problem sequences (B, T, 2)
    "char-lm": [
        (
            dict(chars="abcdef", embed_size=4, hidden_size=6, num_layers=2, cell=cell, dropout=0.1),
            (2, 5),
        )
        for cell in ("lstm", "gru", "rnn")
    ],
    "text-bilstm": [
        (dict(vocab_size=9, num_classes=2, embed_size=4, hidden_size=5, pooling=p, cell=c), (3, 6))
        for p, c in (("last", "lstm"), ("max", "gru"))
    ],
    "text-bilstm-ensemble": [
        (dict(members=2, vocab_size=9, num_classes=2, embed_size=4, hidden_size=5), (3, 6))
    ],
    "adding-rnn": [(dict(cell=cell, hidden_size=5), (2, 7, 2)) for cell in ("rnn", "lstm", "gru")],
    # generative: binary images (B, 1, H, W) -> per-pixel logits (see INPUTS, OUTPUT_SHAPES)
    **{
        name: [(dict(hidden_size=3, num_layers=2, image_size=9), (2, 1, 9, 9))]
        for name in ("pixelrnn-row", "pixelrnn-diagonal", "pixelcnn")
    },
}


# Models whose example runs in eval mode: in train mode a batch-norm bias feeding (through linear
# 1x1 convolutions) another batch norm is cancelled exactly by that norm's mean, so its gradient is
# exactly 0 (EfficientNet's projection BN biases); in eval mode it is not.
EVAL_MODE = {"efficientnet-lite0", "show-and-tell", "show-attend-tell"}

# models whose output is not (B, num_classes): the expected shape from (kwargs, input shape)
OUTPUT_SHAPES = {
    "crnn": lambda kw, shape: (-(-shape[3] // 4), shape[0], len(kw["charset"]) + 1)
}  # (T, B, C)
# models that take more than images: name -> further forward arguments
CAPTIONS = torch.tensor([[1, 4, 5, 2], [1, 5, 2, 0]])  # <start> w w <end>, padded
EXTRA_INPUTS = {name: (CAPTIONS,) for name in ("show-and-tell", "show-attend-tell")}
OUTPUT_SHAPES.update(
    {name: lambda kw, shape: (2, 3, len(kw["words"])) for name in EXTRA_INPUTS}
)  # (B, T-1, V)
OUTPUT_SHAPES.update(
    {
        name: lambda kw, shape: (shape[0], kw["output_frames"], *shape[2:])
        for name in ("convlstm-forecaster", "cnn-lstm-forecaster", "motion-lstm-forecaster")
    }
)  # (B, T_out, C, H, W)
# models whose output layer starts at zero (untrained, they copy the last frame): no gradient
# reaches the layers before it until it moves, so the example moves it first
ZERO_START = {
    "motion-lstm-forecaster": lambda model: torch.nn.init.normal_(model.head.weight, std=0.1)
}
# models that take token ids: name -> input maker from the shape (ids >= 1: no padding)
INPUTS = {
    "char-lm": lambda shape: torch.randint(0, 6, shape),
    "text-bilstm": lambda shape: torch.randint(1, 9, shape),
}
INPUTS["text-bilstm-ensemble"] = INPUTS["text-bilstm"]
OUTPUT_SHAPES.update(
    {
        "char-lm": lambda kw, shape: (*shape, len(kw["chars"])),
        "adding-rnn": lambda kw, shape: (shape[0],),
    }
)
for _name in ("pixelrnn-row", "pixelrnn-diagonal", "pixelcnn"):  # binary images -> logits
    INPUTS[_name] = lambda shape: torch.bernoulli(torch.full(shape, 0.3))
    OUTPUT_SHAPES[_name] = lambda kw, shape: shape


def test_every_model_has_an_example():
    assert set(list_models()) <= set(EXAMPLES)


CASES = [(name, kw, shape) for name, cases in EXAMPLES.items() for kw, shape in cases]


@pytest.mark.parametrize(
    "name,kwargs,shape", CASES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(CASES)]
)
def test_forward_backward_every_parameter_gets_gradient(name, kwargs, shape):
    torch.manual_seed(0)
    model = get_model(name, **kwargs)
    model.train(name not in EVAL_MODE)
    if name in ZERO_START:
        ZERO_START[name](model)
    x = INPUTS[name](shape) if name in INPUTS else torch.rand(shape)
    out = model(x, *EXTRA_INPUTS.get(name, ()))
    expected = (
        OUTPUT_SHAPES[name](kwargs, shape)
        if name in OUTPUT_SHAPES
        else (shape[0], kwargs["num_classes"])
    )
    assert out.shape == expected and torch.isfinite(out).all()
    out.logsumexp(-1).sum().backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing, f"parameters without gradient: {missing}"


def test_row_lstm_reads_what_it_says():
    model = get_model(
        "row-lstm", image_size=4, hidden_size=2, reading="rows+columns", bidirectional=False
    )
    x = torch.arange(16.0).view(1, 1, 4, 4)
    rows, cols = model.reader.sequences(x)
    assert rows[0, 1].tolist() == [4, 5, 6, 7]  # step 1 = second row
    assert cols[0, 1].tolist() == [1, 5, 9, 13]  # step 1 = second column
    pixels = get_model("row-lstm", image_size=4, hidden_size=2, reading="pixels").reader.sequences(
        x
    )[0]
    assert pixels.shape == (1, 16, 1) and pixels[0, :, 0].tolist() == list(range(16))
    perm = get_model("row-lstm", image_size=4, hidden_size=2, reading="permuted-pixels").reader
    seq = perm.sequences(x)[0][0, :, 0]
    assert sorted(seq.tolist()) == list(range(16)) and seq.tolist() != list(range(16))


def test_forward_features_head_and_reset():
    model = get_model("row-lstm", image_size=8, hidden_size=4)
    feats = model.forward_features(torch.rand(2, 1, 8, 8))
    assert feats.shape == (2, 8)
    model.reset_classifier(3)
    assert model.forward_head(feats).shape == (2, 3)
