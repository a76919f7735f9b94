"""The ``textline`` task's language model: a character n-gram fit on a run's **training** lines,
its shallow-fusion weights tuned on the **validation** lines (:func:`tune_lm`).

The n-gram (:class:`~lstmvision.nn.ngram.CharNGram`, order ``--lm-order``, Witten-Bell) is fused
into CTC prefix beam search (shallow fusion: ``log p_ctc + α · log p_lm + β · |l|``, see
:mod:`lstmvision.nn.ctc`). ``α = lm_weight`` and ``β = length_bonus`` are chosen on the validation
lines alone (beam :data:`LM_BEAM`, the grid :data:`LM_GRID`, which includes ``(0, 0)``, plain beam
search); the test lines are decoded once with that choice. The run gets ``lm.json`` (counts +
weights + the grid's validation CER, :class:`~lstmvision.nn.ngram.LineLM`) and the metrics
``val_cer_lm``, ``val_wer_lm``, ``test_cer_lm``, ``test_wer_lm``, ``lm_weight``, ``length_bonus``.

Training with ``--lm`` calls :func:`fit_lm` at the end of the test epoch
(:class:`~lstmvision.tasks.textline.TextLineModule`); :func:`add_lm`
(``lstmvision textline-lm RUN``) gives an already-trained run the same. ``predict --beam N``
(N > 1) decodes with :func:`run_lm`: the run's ``lm.json`` and its tuned weights
(``--lm-weight`` overrides, 0 turns it off).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchmetrics.functional.text import char_error_rate, word_error_rate

from lstmvision.data.line_batches import LineSet, collate_lines, width_sorted_batches
from lstmvision.data.lines import Charset, Line
from lstmvision.errors import ConfigError, DataError
from lstmvision.nn.ctc import beam_decode, decode_batch, greedy_texts
from lstmvision.nn.ngram import CharNGram, LineLM
from lstmvision.tasks import run_folder, run_lock

# (lm_weight, length_bonus) tried on the validation lines; (0, 0) is plain beam search, kept when
# the LM does not help
LM_GRID = ((0.0, 0.0), *((w, b) for w in (0.3, 0.6, 1.0) for b in (0.0, 1.0, 2.0)))
LM_BEAM = 10  # beam width of the tuning and of the *_lm metrics


@torch.no_grad()
def line_log_probs(
    model: nn.Module, lines: LineSet | list[Line], batch_size: int = 16
) -> list[torch.Tensor]:
    """Per line (in order) the ``(T, C)`` CPU log-probabilities of ``model`` (eval mode), batched
    by width like the evaluation loader."""
    data = (
        lines
        if isinstance(lines, LineSet)
        else LineSet(lines, model.height, Charset(model.charset))
    )
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    out: list[torch.Tensor | None] = [None] * len(data)
    for chunk in width_sorted_batches(data.widths, batch_size):
        batch = collate_lines([data[i] for i in chunk])
        _, per_line = decode_batch(model, batch["images"].to(device), batch["widths"].to(device))
        for i, lp in zip(chunk, per_line):
            out[i] = lp.float().cpu()
    model.train(was_training)
    return out


def error_rates(preds: list[str], targets: list[str]) -> tuple[float, float]:
    """(CER, WER) of whole lists (torchmetrics: edits over reference characters/words)."""
    return float(char_error_rate(preds, targets)), float(word_error_rate(preds, targets))


def _texts(lines: LineSet | list[Line]) -> list[str]:
    return [ln.text for ln in (lines.lines if isinstance(lines, LineSet) else lines)]


def tune_lm(
    model: nn.Module,
    ngram: CharNGram,
    lines_val: LineSet | list[Line],
    lines_test: LineSet | list[Line],
    grid=LM_GRID,
    beam: int = LM_BEAM,
    batch_size: int = 16,
    progress=None,
) -> tuple[LineLM, dict]:
    """Choose ``(lm_weight, length_bonus)`` from ``grid`` by the CER of beam search (width
    ``beam``) on the **validation** lines only, then decode the test lines once with that choice.

    Returns the tuned :class:`LineLM` (its ``info`` records the beam, the grid's validation CER and
    the greedy CER of both splits, from the same log-probabilities) and the metrics ``val_cer_lm``,
    ``val_wer_lm``, ``test_cer_lm``, ``test_wer_lm`` (none without test lines), ``lm_weight`` and
    ``length_bonus``. ``progress``: called with one line of text per decoding pass."""
    say = progress or (lambda text: None)

    def rates(
        log_probs: list[torch.Tensor], texts: list[str], lm: LineLM | None
    ) -> tuple[float, float]:
        if lm is None:  # greedy
            return error_rates([greedy_texts(lp, model.charset)[0] for lp in log_probs], texts)
        return error_rates([beam_decode(lp, model.charset, beam, lm) for lp in log_probs], texts)

    val, val_texts = line_log_probs(model, lines_val, batch_size), _texts(lines_val)
    tried = []
    for weight, bonus in grid:
        cer, wer = rates(val, val_texts, LineLM(ngram, float(weight), float(bonus)))
        tried.append(
            {
                "lm_weight": float(weight),
                "length_bonus": float(bonus),
                "val_cer": cer,
                "val_wer": wer,
            }
        )
        say(
            f"lm_weight {weight:g} length_bonus {bonus:g}: val CER {cer:.4f} "
            f"({len(val)} lines, beam {beam})"
        )
    best = min(tried, key=lambda r: (r["val_cer"], r["val_wer"]))  # equals: the first in the grid
    info = {
        "beam": beam,
        "val_cer_lm": best["val_cer"],
        "val_cer_greedy": rates(val, val_texts, None)[0],
        "grid": tried,
    }
    lm = LineLM(ngram, best["lm_weight"], best["length_bonus"], info)
    metrics = {
        "val_cer_lm": best["val_cer"],
        "val_wer_lm": best["val_wer"],
        "lm_weight": lm.lm_weight,
        "length_bonus": lm.length_bonus,
    }
    test, test_texts = line_log_probs(model, lines_test, batch_size), _texts(lines_test)
    if test:
        metrics["test_cer_lm"], metrics["test_wer_lm"] = rates(test, test_texts, lm)
        info.update(
            test_cer_lm=metrics["test_cer_lm"], test_cer_greedy=rates(test, test_texts, None)[0]
        )
    say(
        f"chose lm_weight {lm.lm_weight:g} length_bonus {lm.length_bonus:g}"
        + (f": test CER {metrics['test_cer_lm']:.4f}" if test else "")
    )
    return lm, metrics


def fit_lm(
    model: nn.Module,
    train: list[str],
    order: int,
    lines_val: LineSet | list[Line],
    lines_test: LineSet | list[Line],
    batch_size: int = 16,
    progress=None,
) -> tuple[LineLM, dict]:
    """Fit the character n-gram of ``order`` on the ``train`` texts, tune it with
    :func:`tune_lm` and record the number of training lines in its ``info``."""
    ngram = CharNGram.fit(train, order, model.charset)
    lm, metrics = tune_lm(
        model, ngram, lines_val, lines_test, batch_size=batch_size, progress=progress
    )
    lm.info["train_lines"] = len(train)
    return lm, metrics


def run_lm(run_dir: Path | None, beam: int, lm_weight: float | None = None) -> LineLM | None:
    """The run's ``lm.json`` for a beam search of width ``beam`` (its tuned weights, ``lm_weight``
    if given); None for greedy decoding, ``lm_weight = 0`` or a run without one."""
    if lm_weight is not None and lm_weight < 0:
        raise ConfigError(f"--lm-weight {lm_weight}: must be at least 0")
    path = Path(run_dir) / "lm.json" if run_dir is not None else None
    if beam == 1 or lm_weight == 0:
        if lm_weight:
            raise ConfigError(
                "--lm-weight needs --beam 2 or more: the language model is fused into the "
                "beam search"
            )
        return None
    if path is None or not path.is_file():
        if lm_weight is not None:
            raise ConfigError(
                f"{run_dir}: no lm.json to weigh (train with --lm, or add one with "
                f"`lstmvision textline-lm {run_dir}`)"
            )
        return None
    try:
        lm = LineLM.load(path)
    except ValueError as e:
        raise DataError(str(e)) from None
    if lm_weight is not None:
        lm.lm_weight = float(lm_weight)
    return lm


def add_lm(
    run_dir: Path, order: int | None = None, data_root: str | None = None, progress=None
) -> dict:
    """Give a finished textline run its language model, as training with ``--lm`` does: fit the
    character n-gram on the run's **training** lines (its config's data set and ``limit_train``),
    tune its weights on the validation lines (:func:`tune_lm`), write ``lm.json`` and merge the LM
    figures into ``metrics.json``. Returns those figures plus the greedy CER of both splits. Holds
    the run folder's lock (:mod:`run_lock`) throughout."""
    run_dir = Path(run_dir)
    task_name, _ = run_folder.read_run_config(run_dir)
    if task_name != "textline":
        raise ConfigError(f"{run_dir}: a {task_name!r} run, not a textline run")
    with run_lock.hold(run_dir, "add a language model"):
        return _add_lm(run_dir, order, data_root, progress)


def _add_lm(run_dir: Path, order: int | None, data_root: str | None, progress) -> dict:
    from lstmvision.tasks.textline import TextLineTask  # the task module imports this one

    cfg = run_folder.load_run_config(
        run_dir, TextLineTask, {"data_root": data_root} if data_root else None
    )
    order = cfg.lm_order if order is None else order
    if order < 1:
        raise ConfigError(f"--order {order}: must be at least 1")
    model = run_folder.load_model(run_dir)
    splits = TextLineTask().splits(cfg)
    train = splits["train"][: cfg.limit_train] if cfg.limit_train else splits["train"]
    if not splits["val"]:
        raise DataError(f"{cfg.dataset}: no validation lines to tune the language model on")
    texts, batch_size = [ln.text for ln in train], cfg.batch_size or 16
    lm, metrics = fit_lm(
        model, texts, order, splits["val"], splits["test"], batch_size, progress=progress
    )
    lm.save(run_dir / "lm.json")
    run_folder.update_metrics(run_dir, metrics)
    return {
        **metrics,
        "val_cer_greedy": lm.info["val_cer_greedy"],
        "test_cer_greedy": lm.info.get("test_cer_greedy"),
        "train_lines": len(train),
        "lm_file": str(run_dir / "lm.json"),
    }
