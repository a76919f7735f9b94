"""Pictures of a classifier on a whole split: its confusion matrix and a grid of predictions."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassConfusionMatrix

from lstmvision.viz.plots import plot_confusion_matrix, plot_prediction_grid


@torch.no_grad()
def predict_all(
    model: nn.Module, loader: DataLoader
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images, labels and predicted probabilities over a whole loader, in eval mode."""
    was_training = model.training
    model.eval()
    xs, ys, ps = [], [], []
    for x, y in loader:
        xs.append(x), ys.append(y), ps.append(model(x).softmax(-1))
    model.train(was_training)
    return torch.cat(xs), torch.cat(ys), torch.cat(ps)


def classification_pictures(
    model: nn.Module, loader: DataLoader, classes, run_dir: Path, title: str, shown=None
) -> list[Path]:
    """Confusion matrix and a grid of test images with predicted/true labels; ``shown`` maps a
    batch of inputs to the images drawn (e.g. a clip to its last frame; default: as they are)."""
    inputs, labels, probs = predict_all(model, loader)
    images = inputs if shown is None else shown(inputs)
    preds = probs.argmax(-1)
    cm = MulticlassConfusionMatrix(len(classes))(preds, labels)
    return [
        plot_confusion_matrix(cm, classes, run_dir / "confusion_matrix.png", title=title),
        plot_prediction_grid(
            images,
            labels,
            preds,
            probs.max(-1).values,
            classes,
            run_dir / "predictions.png",
            title=title,
        ),
    ]
