"""Transfer learning: the seed's rule of thumb for choosing a mode.

The seed text (after CS231n) names four scenarios by the target data set's size and its similarity
to the source (pre-training) data set:

=================  ==========================================  =====================================
                   similar to the source                       very different from the source
=================  ==========================================  =====================================
small target       (i) linear classifier on the CNN codes      (iii) linear classifier (an SVM) on
                   (top-layer features); fine-tuning would     activations from earlier in the
                   overfit                                     network: the top is source-specific
large target       (ii) fine-tune the whole network            (iv) train from scratch is
                                                               affordable, but initialising from the
                                                               pretrained weights and fine-tuning
                                                               everything is usually better
=================  ==========================================  =====================================

The seed gives no number for "small"; we call a target small below ``SMALL_BELOW`` labelled
images (an assumption, stated in the advice; the transfer study measures where it holds).
"""

from __future__ import annotations

from dataclasses import dataclass

from lstmvision.errors import ConfigError

SMALL_BELOW = 5000


@dataclass(frozen=True)
class Advice:
    scenario: str
    mode: str  # codes | codes-early | finetune | finetune-all
    command_hint: str
    why: str


_ADVICE = {
    ("small", "high"): Advice(
        "(i) small target, similar to the source",
        "codes",
        "--transfer codes",
        "with little data, fine-tuning the CNN would overfit; the source's top-level features "
        "should fit this similar data too, so train a linear classifier (softmax or linear SVM) "
        "on the CNN codes",
    ),
    ("large", "high"): Advice(
        "(ii) large target, similar to the source",
        "finetune-all",
        "--transfer finetune --freeze-depth 0",
        "with enough data, fine-tuning the full network is unlikely to overfit and adapts every "
        "layer",
    ),
    ("small", "low"): Advice(
        "(iii) small target, very different from the source",
        "codes-early",
        "--transfer codes (from an earlier stage)",
        "with little data only a linear classifier is safe, but the top layers are specific to the "
        "source data, so train it (an SVM) on activations from earlier in the network",
    ),
    ("large", "low"): Advice(
        "(iv) large target, very different from the source",
        "finetune-all",
        "--transfer finetune --freeze-depth 0 (or --transfer scratch)",
        "there is enough data to train from scratch, yet starting from the pretrained weights and "
        "fine-tuning the entire network is very often better in practice",
    ),
}


def advise(target_size: int, similarity: str) -> Advice:
    """The seed's rule of thumb for ``target_size`` labelled images and ``similarity`` high|low."""
    if target_size < 1:
        raise ConfigError(
            f"--target-size must be a positive number of labelled images, not {target_size}"
        )
    if similarity not in ("high", "low"):
        raise ConfigError(f"--similarity must be high or low, not {similarity!r}")
    return _ADVICE[("small" if target_size < SMALL_BELOW else "large", similarity)]


def format_advice(target_size: int, similarity: str) -> str:
    a = advise(target_size, similarity)
    size = "small" if target_size < SMALL_BELOW else "large"
    return (
        f"scenario: {a.scenario}\n"
        f"  ({target_size} labelled images counts as {size}: the threshold here is {SMALL_BELOW}, "
        f"an assumption; the seed gives none)\n"
        f"recommended mode: {a.mode}  [{a.command_hint}]\n"
        f"why: {a.why}"
    )


# ------------------------------------------------------------------ CNN codes (fixed features)


def extract_codes(
    source: str,
    dataset: str,
    split: str,
    out,
    data_root=None,
    limit: int | None = None,
    image_size: int | None = None,
    batch_size: int = 256,
) -> dict:
    """Write the "CNN codes" (``forward_features``: the penultimate activations) of ``dataset``'s
    ``split`` through ``source`` (a run folder, or ``imagenet`` for EfficientNet-Lite0) to a
    safetensors file ``{"codes": (N, F) float32, "labels": (N,) int64}``; return a summary."""
    from pathlib import Path

    import torch
    from safetensors.torch import save_file

    from lstmvision.data import load_split, resolve_data_root
    from lstmvision.data.transforms import resize_images
    from lstmvision.models import get_model
    from lstmvision.tasks.run_folder import load_model

    model = get_model("efficientnet-lite0") if source == "imagenet" else load_model(Path(source))
    images, labels = load_split(dataset, resolve_data_root(data_root), split)
    images, labels = images[:limit], labels[:limit]
    codes = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].unsqueeze(1).float() / 255  # (b, 1, H, W)
            codes.append(model.eval().forward_features(resize_images(x, image_size)))  # (b, F)
    codes = torch.cat(codes)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {"codes": codes.contiguous(), "labels": labels.contiguous()},
        str(out),
        metadata={"source": str(source), "dataset": dataset, "split": split},
    )
    return {"file": str(out), "examples": len(codes), "features": codes.shape[1]}
