"""The learning-rate schedule every task trains under: one cycle (Smith & Topin 2019), a function
of the step.

Over ``total_steps`` optimizer steps ``s``, with the warm-up ending at ``w = pct_start * total - 1``
and a cosine ramp ``cos(a, b, p) = b + (a - b) / 2 * (1 + cos(pi * p))`` from ``a`` (``p = 0``) to
``b`` (``p = 1``)::

    lr(s)       = cos(peak / 25, peak, s / w)                  for s <= w (warm-up)
                = cos(peak, peak / 25 / 1e4, (s - w) / (total - 1 - w))   after it
    momentum(s) = cos(0.95, 0.85, s / w),  then cos(0.85, 0.95, (s - w) / (total - 1 - w))

``peak`` is each parameter group's ``lr`` when the schedule is built; the momentum is SGD's
``momentum`` or Adam's ``beta1``. These are torch's ``OneCycleLR`` defaults (cosine annealing,
``div_factor`` 25, ``final_div_factor`` 1e4, momentum cycled between 0.85 and 0.95, two phases),
computed the same way, so a run gives the same numbers under either. ``total_steps`` is a public
number: a time budget that changes the length of a run sets it, and the schedule goes on as one
built for the new length would (the warm-up stays the same share of the steps).
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torch.optim.lr_scheduler import LRScheduler

DIV_FACTOR = 25.0
"""the first learning rate is the peak over this"""
FINAL_DIV_FACTOR = 1e4
"""the last learning rate is the first over this"""
MOMENTUM_RANGE = (0.85, 0.95)
"""the momentum (Adam's beta1) at the peak learning rate, and at the start and end"""


def cosine_ramp(start: float, end: float, progress: float) -> float:
    """``start`` at ``progress`` 0 to ``end`` at 1 along half a cosine (torch's arithmetic)."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * progress) + 1)


def one_cycle_phase(step: int, total_steps: int, pct_start: float) -> tuple[bool, float]:
    """(in the warm-up?, progress through that phase in [0, 1]) at ``step``."""
    warmup_end = float(pct_start * total_steps) - 1
    if step <= warmup_end:
        return True, step / warmup_end if warmup_end > 0 else 1.0
    span = total_steps - 1 - warmup_end
    return False, (step - warmup_end) / span if span > 0 else 1.0


class OneCycle(LRScheduler):
    """One-cycle learning rate and momentum (see the module doc), stepped once per optimizer step.

    Each parameter group keeps its ``max_lr`` (the peak), ``initial_lr``, ``min_lr``,
    ``max_momentum`` and ``base_momentum``, under the names torch's ``OneCycleLR`` uses, so an
    optimizer state saved under either fits the other; :meth:`load_state_dict` also takes a saved
    ``OneCycleLR`` state (checkpoints written before this class)."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        pct_start: float = 0.3,
        last_epoch: int = -1,
    ):
        if int(total_steps) < 1:
            raise ValueError(f"OneCycle: total_steps {total_steps} must be positive")
        if not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycle: pct_start {pct_start} must be between 0 and 1")
        if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
            raise ValueError("OneCycle: the optimizer has neither a momentum nor betas to cycle")
        self.total_steps, self.pct_start = int(total_steps), float(pct_start)
        self.use_beta1 = "betas" in optimizer.defaults
        if last_epoch == -1:
            base, top = MOMENTUM_RANGE
            for group in optimizer.param_groups:
                group["max_lr"] = group["lr"]
                group["initial_lr"] = group["max_lr"] / DIV_FACTOR
                group["min_lr"] = group["initial_lr"] / FINAL_DIV_FACTOR
                group["max_momentum"], group["base_momentum"] = top, base
                self._set_momentum(group, top)
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group: dict, value: float) -> None:
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def get_lr(self) -> list[float]:
        """The learning rates at step ``last_epoch`` (and, as a side effect, the momentum)."""
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(
                f"OneCycle: stepped {step} times; the schedule has {self.total_steps} steps"
            )
        warmup, progress = one_cycle_phase(step, self.total_steps, self.pct_start)
        lrs = []
        for group in self.optimizer.param_groups:
            if warmup:
                lr = cosine_ramp(group["initial_lr"], group["max_lr"], progress)
                momentum = cosine_ramp(group["max_momentum"], group["base_momentum"], progress)
            else:
                lr = cosine_ramp(group["max_lr"], group["min_lr"], progress)
                momentum = cosine_ramp(group["base_momentum"], group["max_momentum"], progress)
            self._set_momentum(group, momentum)
            lrs.append(lr)
        return lrs

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        phases = state.pop("_schedule_phases", None)
        if phases is not None:  # torch's OneCycleLR: its warm-up end is pct_start * total - 1
            if len(phases) != 2 or state.get("_anneal_func_type", "cos") != "cos":
                raise ValueError("OneCycle: can only resume a two-phase, cosine OneCycleLR")
            state["pct_start"] = (phases[0]["end_step"] + 1) / state["total_steps"]
            for key in ("_anneal_func_type", "anneal_func", "cycle_momentum"):
                state.pop(key, None)
        super().load_state_dict(state)


def one_cycle(module: L.LightningModule, opt: torch.optim.Optimizer, pct_start: float = 0.3):
    """``configure_optimizers``'s answer for ``opt`` under :class:`OneCycle` stepped every batch
    over the whole run, peaking at each parameter group's own ``lr``."""
    total = max(1, int(module.trainer.estimated_stepping_batches))
    sched = OneCycle(opt, total_steps=total, pct_start=pct_start)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
