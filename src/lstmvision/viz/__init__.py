"""Pictures: training curves, confusion matrices, prediction grids (matplotlib, Agg backend)."""

from lstmvision.viz.plots import (
    plot_confusion_matrix,
    plot_prediction_grid,
    plot_series_panels,
    plot_training_curves,
)

__all__ = [
    "plot_confusion_matrix",
    "plot_prediction_grid",
    "plot_series_panels",
    "plot_training_curves",
]
