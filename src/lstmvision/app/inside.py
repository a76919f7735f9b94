"""Inside tab: the vanishing gradient, computed live. An RNN, an LSTM and a GRU are trained for a
few steps on the adding problem of length ``T``; then ``||dLoss/dx_t||`` over ``t`` shows how far
back each one's gradient reaches (:func:`lstmvision.viz.explain.gradient_study`, what
``lstmvision explain gradients`` draws, here at a small size)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from lstmvision.errors import DataError

LIMITS = {"seq_len": (5, 200), "steps": (0, 300), "hidden_size": (4, 64)}


def gradients(seq_len, steps, hidden_size, folder: Path, seed: int = 0) -> tuple[str, str]:
    """The picture (a PNG path) and a markdown table of the first and last steps' norms."""
    from lstmvision.viz.explain import gradient_study

    values = {"seq_len": seq_len, "steps": steps, "hidden_size": hidden_size}
    for key, value in values.items():
        low, high = LIMITS[key]
        if not isinstance(value, (int, float)) or not low <= value <= high:
            raise DataError(f"{key} {value!r}: must be between {low} and {high}")
    out = Path(tempfile.mkdtemp(prefix="gradients-", dir=folder)) / "gradients.png"
    path, curves = gradient_study(
        out, int(seq_len), int(steps), int(hidden_size), batch_size=32, seed=seed
    )
    rows = ["| cell | ‖dL/dx_1‖ | ‖dL/dx_T‖ |", "|---|---|---|"]
    rows += [f"| {k} | {float(v[0]):.2e} | {float(v[-1]):.2e} |" for k, v in curves.items()]
    return str(path), "\n".join(rows)


def build(handler, folder: Path) -> None:
    import gradio as gr

    gr.Markdown(
        "No trained model here: an RNN, an LSTM and a GRU are trained live on the adding problem "
        "(sum the two marked numbers of a sequence of length T), then the gradient of the loss "
        "with respect to each input step shows how far back each one learns "
        "(`lstmvision explain gradients` at a small size)."
    )
    with gr.Row():
        seq_len = gr.Slider(*LIMITS["seq_len"], value=50, step=5, label="sequence length T")
        steps = gr.Slider(*LIMITS["steps"], value=100, step=10, label="training steps per cell")
        hidden = gr.Slider(*LIMITS["hidden_size"], value=32, step=4, label="hidden units")
    run = gr.Button("Compute", variant="primary")
    table = gr.Markdown()
    picture = gr.Image(label="||dLoss/dx_t|| over t", type="filepath")
    run.click(
        handler("gradients", lambda t, n, h: gradients(t, n, h, folder)),
        [seq_len, steps, hidden],
        [picture, table],
        api_name="gradients",
    )
