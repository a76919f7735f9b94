r"""Looking inside recurrent networks: input-gradient norms over time, LSTM gates over an image's
rows, and hidden units over a text.

* :func:`input_gradient_norms`: ``||∂L/∂x_t||`` for every step ``t`` (mean over the batch). For
  a loss read at the last step, a vanilla RNN's norms fall roughly geometrically going back in
  time (the vanishing gradient, ``∂h_T/∂h_t = Π_k diag(φ'_k) W_hh``); an LSTM's cell path
  ``C_t = f_t ⊙ C_{t-1} + ...`` keeps them up while its forget gates stay near 1.
* :func:`lstm_gates`: ``i_t, f_t, o_t, C_t`` of the first layer of a trained Row LSTM (forward
  direction) over the rows of one image, recomputed from the cell equations
  (:class:`lstmvision.nn.cells.LSTMEquations`) with the layer's own weights.
* :func:`plot_text_activations`: Karpathy-style text coloured by a unit's activation.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from lstmvision.nn.cells import LSTM_EQUATIONS
from lstmvision.viz.plots import _save, plt


def input_gradient_norms(forward, x: torch.Tensor, target: torch.Tensor, loss_fn) -> torch.Tensor:
    """``(T,)``: the norm of ``∂loss/∂x[:, t]`` over the features, averaged over the batch.

    ``forward`` maps ``x`` ``(B, T, I)`` to predictions; ``loss_fn(predictions, target)`` is the
    scalar loss."""
    x = x.detach().clone().requires_grad_(True)
    loss = loss_fn(forward(x), target)
    (grad,) = torch.autograd.grad(loss, x)  # (B, T, I)
    return grad.norm(dim=-1).mean(0)  # (T,)


def plot_gradient_norms(curves: dict[str, torch.Tensor], out: Path, title: str = "") -> Path:
    """One line per cell: ``||∂L/∂x_t||`` against ``t``, log scale."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, norms in curves.items():
        ax.semilogy(range(1, len(norms) + 1), norms.clamp(min=1e-30).tolist(), label=label, lw=1.5)
    ax.set_xlabel("time step t (the loss is read after the last step)")
    ax.set_ylabel("||dLoss / dx_t|| (mean over a batch)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    ax.set_title(title, fontsize=9)
    return _save(fig, out)


@torch.no_grad()
def lstm_gates(layer, seq: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gates and cell state of ``layer``'s first layer, forward direction, over ``seq`` ``(T, I)``:
    ``{"input", "forget", "output", "cell"}``, each ``(T, H)``."""
    w_ih, w_hh = layer.weight_ih_l0, layer.weight_hh_l0  # (4H, I), (4H, H)
    b_ih = getattr(layer, "bias_ih_l0", None)
    b_hh = getattr(layer, "bias_hh_l0", None)
    h = seq.new_zeros(1, layer.hidden_size)  # (1, H)
    state = (h, h.clone())
    rows = {k: [] for k in ("input", "forget", "output", "cell")}
    for x_t in seq:  # (I,)
        # the step of LSTMEquations: i, f, g, o from x W_ih^T + b_ih + h W_hh^T + b_hh
        state, (i, f, _g, o, _c_prev, _tanh_c) = LSTM_EQUATIONS.step(
            F.linear(x_t[None], w_ih, b_ih), F.linear(state[0], w_hh, b_hh), state
        )
        for key, value in (("input", i), ("forget", f), ("output", o), ("cell", state[1])):
            rows[key].append(value[0])
    return {k: torch.stack(v) for k, v in rows.items()}  # each (T, H)


def plot_gates(
    image: torch.Tensor, gates: dict[str, torch.Tensor], out: Path, title: str = ""
) -> Path:
    """The image and, beside it, each gate/cell-state map as (row t) x (unit) heat maps."""
    fig, axes = plt.subplots(1, 1 + len(gates), figsize=(3.2 * (1 + len(gates)), 3.6))
    axes[0].imshow(image, cmap="gray")
    axes[0].set_title("input (row t = step t)")
    axes[0].set_ylabel("row t")
    for ax, (name, values) in zip(axes[1:], gates.items()):
        cell = name == "cell"
        lim = float(values.abs().max()) if cell else 1.0
        im = ax.imshow(
            values,
            aspect="auto",
            cmap="coolwarm" if cell else "viridis",
            vmin=-lim if cell else 0.0,
            vmax=lim,
            interpolation="nearest",
        )
        ax.set_title(f"{name} {'state C_t' if cell else 'gate'}")
        ax.set_xlabel("unit")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title, fontsize=9)
    return _save(fig, out)


def plot_text_activations(
    text: str, acts: torch.Tensor, out: Path, units: int = 4, width: int = 80, title: str = ""
) -> Path:
    """``acts`` ``(T, H)`` over the ``T`` characters of ``text``: the ``units`` units that vary
    most, one panel each, every character on a background coloured by the unit's value (blue -1,
    red +1)."""
    chosen = acts.std(0).argsort(descending=True)[:units].tolist()
    lines = -(-len(text) // width)
    fig, axes = plt.subplots(
        len(chosen), 1, figsize=(width * 0.11, (lines * 0.22 + 0.4) * len(chosen)), squeeze=False
    )
    cmap = plt.get_cmap("coolwarm")
    for ax, unit in zip(axes[:, 0], chosen):
        values = acts[:, unit].clamp(-1, 1)
        for k, ch in enumerate(text):
            row, col = divmod(k, width)
            shown = {"\n": "⏎", " ": " ", "\t": "→"}.get(ch, ch)
            ax.text(
                col,
                -row,
                shown,
                ha="center",
                va="center",
                family="monospace",
                fontsize=7,
                bbox=dict(
                    boxstyle="square,pad=0.12", fc=cmap((float(values[k]) + 1) / 2), ec="none"
                ),
            )
        ax.set_xlim(-1, width)
        ax.set_ylim(-lines, 1)
        ax.axis("off")
        ax.set_title(f"unit {unit}", fontsize=8, loc="left")
    fig.suptitle(title, fontsize=9)
    return _save(fig, out)


def gradient_study(
    out: Path,
    seq_len: int = 100,
    steps: int = 1500,
    hidden_size: int = 64,
    cells=("rnn", "lstm", "gru"),
    batch_size: int = 50,
    seed: int = 0,
) -> tuple[Path, dict[str, torch.Tensor]]:
    """Train each cell briefly (``steps`` Adam steps) on the adding problem of length ``seq_len``,
    then measure ``||∂L/∂x_t||`` on 200 fresh sequences; plot the curves into ``out``."""
    from lstmvision.data.text import adding_problem
    from lstmvision.models import get_model

    test = adding_problem(200, seq_len, seed=seed + 999)
    curves, finals = {}, {}
    for cell in cells:
        torch.manual_seed(seed)
        model = get_model("adding-rnn", cell=cell, hidden_size=hidden_size)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        for step in range(steps):
            batch = adding_problem(batch_size, seq_len, seed=seed * 100003 + step)
            loss = F.mse_loss(model(batch.x), batch.y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        with torch.no_grad():
            finals[cell] = float(F.mse_loss(model(test.x), test.y))
        curves[f"{cell} (test MSE {finals[cell]:.3f})"] = input_gradient_norms(
            model, test.x, test.y, F.mse_loss
        )
    title = (
        f"adding problem, T = {seq_len}: gradient of the loss with respect to each input step "
        f"after {steps} training steps (hidden {hidden_size})"
    )
    return plot_gradient_norms(curves, out, title=title), curves


def gates_of_run(run_dir: Path, image_path: Path, out: Path) -> Path:
    """Gates and cell state of a trained ``row-lstm`` run (LSTM cell, rows reading) over one
    image."""
    from lstmvision.data import dataset_info, load_grey_image
    from lstmvision.errors import ConfigError
    from lstmvision.tasks.runner import load

    task, cfg, model = load(run_dir)
    if (
        task.name != "row-lstm"
        or cfg.cell != "lstm"
        or cfg.reading not in ("rows", "columns", "pixels", "permuted-pixels")
    ):
        raise ConfigError(
            f"{run_dir}: gates need a row-lstm run with --cell lstm and a single reading "
            f"(this is {task.name}, cell {getattr(cfg, 'cell', '?')}, "
            f"reading {getattr(cfg, 'reading', '?')})"
        )
    info = dataset_info(cfg.dataset)
    image = load_grey_image(image_path, info.size, info.frame)  # (H, W) in [0, 1]
    x = (image[None, None] - model.mean) / model.std  # (1, 1, H, W), as the model normalises
    (seq,) = model.reader.sequences(x)  # (1, T, step size)
    gates = lstm_gates(model.reader.readers[0], seq[0])
    with torch.no_grad():
        probs = model.eval()(image[None, None]).softmax(-1)[0]
    top = int(probs.argmax())
    title = (
        f"{image_path.name}: predicted {info.classes[top]} ({float(probs[top]):.0%}); "
        f"first LSTM layer, forward direction, one step per {cfg.reading.rstrip('s')} ({run_dir})"
    )
    return plot_gates(image, gates, out, title=title)
