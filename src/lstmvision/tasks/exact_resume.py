"""Exact resume (``--exact-resume``): every random draw of training is a function of the seed and
the position in training, so a run killed at any step and resumed ends bit-identical to the run
that was never interrupted (same machine, thread count and code; one process, ``--num-workers
0``).

Plain Lightning resumes the weights, optimiser and schedule, but draws the rest afresh: the
interrupted epoch is reshuffled, and augmentation and dropout continue from whatever state the
random generators had in the new process. Here the generators (``random``, NumPy's global one and
torch's) are reseeded at three points, each from ``(seed, what, position)``:

* the start of epoch ``e``: its order (the training loader's sampler, e.g. ``RandomSampler``
  or textline's width batches, and ``set_epoch(e)`` on a sampler or data set that has one);
* before batch ``i`` of epoch ``e`` is read: the data set's augmentation of that batch;
* before training step ``g``: dropout and augmentation inside the step.

A resumed run knows where it is from the checkpoint's global step (one optimiser step per
batch), skips the batches of the interrupted epoch already trained without reading them, and
reseeds at the same points. Off by default: the README figures were trained without it, and
their recipes would draw other (equally good) random numbers with it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, Sampler

from lstmvision.errors import ConfigError

EPOCH, BATCH, STEP = 0, 1, 2  # what a seed is for


def reseed(seed: int, what: int, *position: int) -> None:
    """Seed ``random``, NumPy and torch from ``(seed, what, *position)``."""
    state = np.random.SeedSequence([seed, what, *position]).generate_state(2, dtype=np.uint32)
    value = int(state[0]) << 32 | int(state[1])
    random.seed(value)
    np.random.seed(int(state[0]))
    torch.manual_seed(value)


class SeededOrder(Sampler):
    """The training loader's own (batch) sampler, reseeded per epoch and per batch; the epoch and
    the first batch come from ``steps_done()`` (training steps so far) when iteration begins."""

    def __init__(self, inner, dataset, seed: int, steps_done: Callable[[], int]):
        self.inner, self.dataset, self.seed, self.steps_done = inner, dataset, seed, steps_done

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self) -> Iterator:
        epoch, start = divmod(self.steps_done(), len(self.inner))
        for part in (self.inner, self.dataset):
            if hasattr(part, "set_epoch"):
                part.set_epoch(epoch)
        reseed(self.seed, EPOCH, epoch)
        order = list(self.inner)
        for i in range(start, len(order)):
            reseed(self.seed, BATCH, epoch, i)
            yield order[i]


class StepSeeds(Callback):
    """Reseeds before each training step; gives the training loader its position."""

    def __init__(self, seed: int):
        self.seed, self.trainer = seed, None

    def setup(self, trainer, pl_module, stage):
        self.trainer = trainer

    def steps_done(self) -> int:
        return self.trainer.global_step if self.trainer is not None else 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        reseed(self.seed, STEP, trainer.global_step)


def seeded_loader(loader: DataLoader, seed: int, steps_done: Callable[[], int]) -> DataLoader:
    """``loader`` with its sampler (or batch sampler) wrapped in :class:`SeededOrder`."""
    if loader.num_workers:
        raise ConfigError("--exact-resume reads the data in the training process: --num-workers 0")
    if isinstance(loader.dataset, torch.utils.data.IterableDataset):
        raise ConfigError("--exact-resume needs a map-style training data set")
    common = {"collate_fn": loader.collate_fn, "pin_memory": loader.pin_memory}
    if loader.batch_sampler is not None:  # automatic batching: the batch sampler yields indices
        order = SeededOrder(loader.batch_sampler, loader.dataset, seed, steps_done)
        return DataLoader(loader.dataset, batch_sampler=order, **common)
    order = SeededOrder(loader.sampler, loader.dataset, seed, steps_done)  # items are batches
    return DataLoader(loader.dataset, batch_size=None, sampler=order, **common)


def make_exact(datamodule, seed: int) -> StepSeeds:
    """Wrap ``datamodule``'s training loader; returns the callback the trainer needs."""
    seeds = StepSeeds(seed)
    make_loader = datamodule.train_dataloader
    datamodule.train_dataloader = lambda: seeded_loader(make_loader(), seed, seeds.steps_done)
    return seeds
