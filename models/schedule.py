"""The learning-rate schedule of a `full` run, and fitting it to the run's time budget.

A linear decay planned for N steps and cut by the time budget at 0.8 N leaves the rate at a fifth
of its peak when training stops: the last steps are taken at a rate the schedule meant for the
middle of the run, and the kept model is a less settled one (the plain recipe, planned at 2.5
epochs, was cut at 2.03 on a slow day). So once a run has measured its own speed, the decay is
re-aimed at the step the budget can reach, continuing from the rate it has reached, and the run
ends there with the rate at zero and its last validation inside the budget.

Pure arithmetic, no torch: the schedule is kept in the checkpoint's progress, so that a resumed
run continues on the fitted schedule rather than the planned one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Share of the remaining budget planned for: step times wander (other processes, longer batches
# late in an epoch), and overshooting would cut the run after all.
BUDGET_MARGIN = 0.95
# Steps a session measures before it trusts its speed (the first ones include warm-up costs).
MEASURE_STEPS = 20


@dataclass
class LinearSchedule:
    """Linear warm-up to the peak over `warmup` steps, then linear decay to zero at `total`.
    After `refit`, the decay runs from the multiplier reached at `refit_step` to zero at the new
    total, so the rate never jumps."""

    warmup: int
    total: int
    refit_step: int | None = None
    refit_multiplier: float = 1.0
    planned_total: int | None = None  # the total before the first refit (logged with each refit)

    def multiplier(self, step: int) -> float:
        if self.refit_step is None or step < self.refit_step:
            return min(
                (step + 1) / self.warmup, max(0.0, (self.total - step) / max(1, self.total - self.warmup))
            )
        return self.refit_multiplier * max(0.0, (self.total - step) / max(1, self.total - self.refit_step))

    def refit(self, step: int, total: int) -> bool:
        """End the decay at `total` (only ever earlier; `step` itself: stop now); True when the
        schedule changed."""
        total = max(step, total)
        if total >= self.total:
            return False
        self.refit_multiplier = self.multiplier(step)
        self.refit_step = step
        if self.planned_total is None:
            self.planned_total = self.total
        self.total = total
        return True


def affordable_total(
    *,
    done: int,
    total: int,
    steps_per_epoch: int,
    seconds_per_step: float,
    validation_s: float,
    seconds_left: float,
) -> int:
    """The largest total step count (at most `total`) whose remaining training steps plus the
    validation passes they end with fit in `seconds_left` (with the margin): a validation runs at
    every epoch end the run crosses and at its last step. `done` when not even one more step and
    its validation fit: the run should stop where it is."""

    def cost(candidate: int) -> float:
        epochs_ending = math.ceil(candidate / steps_per_epoch) - done // steps_per_epoch
        return (candidate - done) * seconds_per_step + max(1, epochs_ending) * validation_s

    budget = seconds_left * BUDGET_MARGIN
    if cost(total) <= budget:
        return total
    if cost(done + 1) > budget:
        return done
    low, high = done + 1, total  # cost grows with the candidate: bisect for the last that fits
    while low < high:
        middle = (low + high + 1) // 2
        if cost(middle) <= budget:
            low = middle
        else:
            high = middle - 1
    return low
