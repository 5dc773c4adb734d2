"""``--max-minutes``: a wall-clock budget for a training run (Lightning's ``max_time``).

* The clock starts when :func:`train.loop.train` is called (setup, resume loading and the data
  loader's start-up count); ``--resume`` starts a new clock, so a resumed run gets its budget afresh.
* After every optimiser step rank 0 reads its clock and decides; the decision is broadcast, so under
  DDP every rank stops at the same step (the ranks' own clocks never decide).
* The run stops at the first step boundary at or after the budget, then saves a checkpoint and
  exports the encoder as at the end of a run; ``run_summary.json`` records ``stopped_by: "time"``
  (``"steps"`` when the step count ran out first) with the step reached.

Planning the learning-rate schedule for a time budget:

* ``--steps N --max-minutes M``: the schedule is planned over N steps, and the run ends at N steps
  or after M minutes, whichever comes first (a cosine cut short by the clock never reaches its end).
* ``--max-minutes M`` without ``--steps``, for a schedule that depends on the run length
  (``warmup_cosine``): the run starts with the paper's length and, after ``--budget-plan-steps``
  steps (20) or a tenth of the budget, whichever comes first, sets its length to
  ``steps so far + steps/s x time left``, with steps/s measured from the end of the first step (so
  the loader's start-up is not extrapolated).  It re-plans the same way at a quarter, half and three
  quarters of the budget, each time from the rate since the previous plan, so a slow start or a
  machine whose load changes does not leave the cosine unfinished; a plan that runs out with more
  than 5 % of the budget left is extended the same way (the rate was underestimated, e.g. during a
  slow start), so a bad first estimate never ends the run early.  The clock still stops the run if
  it was slower than planned.  Plans are written to ``budget.json``
  and a ``--resume`` without ``--steps`` keeps the last one (the schedule continues where it was;
  only the clock restarts).
* A ``constant`` schedule needs no plan: the run goes on until the clock stops it.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from typing import Any

import torch

from shards.atomic import atomic_write_json

log = logging.getLogger("melstream.train")
PLAN_FILE = "budget.json"
REPLAN_AT = (0.25, 0.5, 0.75)  # fractions of the budget at which the length is planned again


def now() -> float:
    """The budget's clock (seconds; monotonic).  Read once per step, on rank 0 only."""
    return time.monotonic()


def planned_steps(out: str) -> int | None:
    """The run length a time budget planned earlier in ``out`` (``budget.json``), if any."""
    p = os.path.join(out, PLAN_FILE)
    try:
        with open(p) as f:
            v = json.load(f).get("planned_steps")
    except (OSError, ValueError, AttributeError):
        return None
    return int(v) if isinstance(v, int) and v > 0 else None


class TimeBudget:
    """Rank-0 clock + broadcast stop / plan decisions; inert when ``max_minutes`` is None."""

    def __init__(self, max_minutes: float | None, plan_steps: int = 20):
        if max_minutes is not None and not (max_minutes > 0 and math.isfinite(max_minutes)):
            raise ValueError(f"--max-minutes must be a positive number of minutes, got {max_minutes}")
        if plan_steps < 2:
            raise ValueError(f"--budget-plan-steps must be >= 2, got {plan_steps}")
        self.seconds = None if max_minutes is None else float(max_minutes) * 60.0
        self.plan_steps = int(plan_steps)
        self.t0 = now() if self.seconds is not None else 0.0
        self.plan = False          # set by resolve_steps: plan the length from the measured rate
        self.planned: int | None = None
        self.plans: list[dict[str, Any]] = []
        self.last_plan: tuple[int, float] | None = None  # (step, elapsed) of the previous plan
        self.stopped_by: str | None = None
        self.first_step: tuple[int, float] | None = None  # (step, elapsed) after the first step of this process
        self.elapsed = 0.0
        self.steps_per_s: float | None = None

    @property
    def active(self) -> bool:
        return self.seconds is not None

    def resolve_steps(self, cli_steps: int | None, resolved: int, out: str, resume: bool,
                      schedule: str = "warmup_cosine") -> int:
        """The run length to schedule over: ``--steps`` if given; with a budget and no ``--steps``,
        a length planned earlier in ``out`` (``--resume``), else ``resolved`` until the plan is made.
        A ``constant`` schedule is never planned (the clock alone ends the run)."""
        if not self.active or cli_steps is not None or schedule == "constant":
            return resolved
        earlier = planned_steps(out) if resume else None
        if earlier is not None:
            self.planned = earlier
            return earlier
        self.plan = True
        return resolved

    def after_step(self, step: int, acc: Any) -> tuple[bool, int | None]:
        """Call on every rank after each optimiser step: ``(stop, new_total_steps or None)``, decided
        on rank 0 and broadcast to all ranks."""
        if not self.active:
            return False, None
        stop, total = 0, 0
        if acc.is_main_process:
            self.elapsed = now() - self.t0
            if self.first_step is None:
                self.first_step = (step, self.elapsed)
            elif self.plan and self._plan_due(step):
                since = self.last_plan or self.first_step
                rate = (step - since[0]) / max(self.elapsed - since[1], 1e-9)
                total = step + max(int(rate * max(self.seconds - self.elapsed, 0.0)), 1)
                self.steps_per_s = rate
            stop = int(self.elapsed >= self.seconds)
        if acc.num_processes > 1:
            flags = torch.tensor([stop, total], dtype=torch.int64, device=acc.device)
            torch.distributed.broadcast(flags, src=0)
            stop, total = int(flags[0]), int(flags[1])
        if total:
            self.planned = total
            if acc.is_main_process:
                since = self.last_plan or self.first_step
                log.info("--max-minutes: %.3g steps/s over steps %d-%d; the schedule now plans %d steps",
                         self.steps_per_s, since[0], step, total)
                self.plans.append({"step": step, "elapsed_s": round(self.elapsed, 3), "steps_per_s": self.steps_per_s,
                                   "planned_steps": total})
                self.last_plan = (step, self.elapsed)
        if stop:
            self.stopped_by = "time"
        return bool(stop), (total or None)

    def _plan_due(self, step: int) -> bool:
        """Rank 0: first plan after ``plan_steps`` steps of this process or a tenth of the budget
        (at least one step after the first); then at each fraction of :data:`REPLAN_AT`."""
        if step - self.first_step[0] < 1 or (self.last_plan is not None and step - self.last_plan[0] < 1):
            return False
        if not self.plans:
            return step - self.first_step[0] + 1 >= self.plan_steps or self.elapsed >= 0.1 * self.seconds
        if step >= self.planned - 1 and self.elapsed < 0.95 * self.seconds:
            return True  # the plan ran out with time to spare: the rate was underestimated, extend it
        done = sum(1 for f in REPLAN_AT if self.plans[-1]["elapsed_s"] >= f * self.seconds)
        return done < len(REPLAN_AT) and self.elapsed >= REPLAN_AT[done] * self.seconds

    def save_plan(self, out: str, step: int) -> None:
        """``budget.json``: the planned length and the plans so far (main process only)."""
        atomic_write_json(os.path.join(out, PLAN_FILE), {
            "planned_steps": self.planned, "max_minutes": self.seconds / 60.0, "planned_at_step": step,
            "steps_per_s": self.steps_per_s, "plans": self.plans})

    def summary(self, step: int, total_steps: int) -> dict[str, Any]:
        """Fields for ``run_summary.json``."""
        if self.stopped_by is None:
            self.stopped_by = "steps" if step >= total_steps else None
        out: dict[str, Any] = {"stopped_by": self.stopped_by, "total_steps": total_steps}
        if self.active:
            out.update({"max_minutes": self.seconds / 60.0, "elapsed_s": round(self.elapsed, 3),
                        "planned_steps": self.planned})
        return out
