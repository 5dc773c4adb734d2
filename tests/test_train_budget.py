"""``--max-minutes``: stop at a step boundary, checkpoint + export, ``stopped_by``, resume with a fresh
clock, and a schedule planned from the measured steps/s.  The budget's clock is replaced by one that
advances 10 s per reading, so the stopping step is exact (no timing enters an assertion)."""
from __future__ import annotations

import json
import math
import os

import pytest

import train.budget as budget
from tests._train_support import train_cfg as _cfg
from train.budget import TimeBudget
from train.loop import train


@pytest.fixture
def fake_clock(monkeypatch):
    """Every reading is 10 s after the previous one (read once at the start and once per step)."""
    state = {"t": 0.0}

    def tick() -> float:
        state["t"] += 10.0
        return state["t"]

    monkeypatch.setattr(budget, "now", tick)
    return state


def _rows(out):
    return [json.loads(line) for line in open(out / "metrics.jsonl")]


def test_time_budget_stops_checkpoints_exports_and_resume_restarts_the_clock(demo_small, tmp_path, fake_clock):
    d = os.path.join(demo_small[0], "pretrain")
    out = tmp_path / "run"
    extra = ["--max-minutes", "1", "--save-every", "4", "--log-every", "5",
             "--hp", "schedule=warmup_cosine", "--hp", "warmup_steps=1"]
    s = train(_cfg(d, out, "temporal_gap", 50, extra))
    # 60 s of budget at 10 s per step: the step that reaches 60 s is step 6 (not a save/log boundary)
    assert s["step"] == 6 and s["stopped_by"] == "time" and len(s["losses"]) == 6
    summary = json.load(open(out / "run_summary.json"))
    assert summary["stopped_by"] == "time" and summary["step"] == 6 and summary["elapsed_s"] == 60.0
    assert summary["planned_steps"] is None and summary["total_steps"] == 50  # --steps plans the schedule
    assert json.load(open(out / "encoder.json"))["step"] == 6
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_0000006"
    rows = _rows(out)
    assert [r["step"] for r in rows] == [5, 6]  # the stopping step is logged
    # the schedule is the one of a 50-step run, cut short by the clock
    for r in rows:
        assert abs(r["lr"] - 1e-4 * 0.5 * (1 + math.cos(math.pi * (r["step"] - 1) / 49))) < 1e-12

    # --resume: a fresh 60-s budget, so 6 more steps (an inherited clock would stop at step 7)
    r = train(_cfg(d, out, "temporal_gap", 50, [*extra, "--resume"]))
    assert r["step"] == 12 and r["stopped_by"] == "time" and len(r["losses"]) == 6
    assert json.load(open(out / "encoder.json"))["step"] == 12
    assert [x["step"] for x in _rows(out)] == [5, 6, 10, 12]

    # without a budget the same command runs to --steps and says so
    done = train(_cfg(d, out, "temporal_gap", 14, ["--save-every", "4", "--resume"]))
    assert done["step"] == 14 and done["stopped_by"] == "steps"


def test_time_budget_plans_the_schedule_from_the_measured_rate(demo_small, tmp_path, fake_clock, monkeypatch):
    from models.objectives import Objective

    told: list[int] = []  # the run lengths the objective is told (its own schedules, e.g. m2d's EMA ramp)
    monkeypatch.setattr(Objective, "set_total_steps", lambda self, steps: told.append(steps))
    d = os.path.join(demo_small[0], "pretrain")
    out = tmp_path / "plan"
    # no --steps: temporal_gap's paper length is 300k steps; the budget of 10 min re-plans it
    argv = ["--method", "temporal_gap", "--shards", d, "--out", str(out), "--batch-size", "8",
            "--num-workers", "0", "--log-every", "1", "--save-every", "1000", "--shuffle-buffer", "32",
            "--tracker", "none", "--max-minutes", "10", "--budget-plan-steps", "3",
            "--hp", "schedule=warmup_cosine", "--hp", "warmup_steps=1", "--hp", "final_lr_ratio=0"]
    from models import ENCODERS
    from models.objectives import OBJECTIVES
    from train.config import load_config

    s = train(load_config(argv, sorted(OBJECTIVES), sorted(ENCODERS)))
    # clock: start 10, step k at 10 + 10 k; planned at step 3 from steps 1-3: 0.1 steps/s x (600 - 30) s,
    # then again at a quarter, half and three quarters of the budget (steps 15, 30, 45), same rate
    plan = json.load(open(out / "budget.json"))
    assert [(p["step"], p["planned_steps"]) for p in plan["plans"]] == [(3, 60), (15, 60), (30, 60), (45, 60)]
    assert plan["planned_steps"] == 60 and plan["planned_at_step"] == 45
    assert all(p["steps_per_s"] == pytest.approx(0.1) for p in plan["plans"])
    assert s["step"] == 60
    assert told[0] == 300_000 and told[1:] == [60] * 4  # the paper length, then every re-plan
    rows = _rows(out)
    assert rows[1]["lr"] > 0.99e-4  # before the plan: the 300k-step cosine barely moved
    for r in rows[3:]:  # after it: a cosine over 60 steps that ends at 0
        assert abs(r["lr"] - 1e-4 * 0.5 * (1 + math.cos(math.pi * (r["step"] - 1) / 59))) < 1e-12
    assert rows[-1]["lr"] == pytest.approx(0.0, abs=1e-15)
    # --resume without --steps keeps the planned length (the run is complete: nothing to do)
    again = train(load_config([*argv, "--resume"], sorted(OBJECTIVES), sorted(ENCODERS)))
    assert again["step"] == 60 and again["losses"] == [] and again["stopped_by"] == "steps"


def test_time_budget_slow_start_is_replanned_and_constant_schedules_are_not_planned(demo_small, tmp_path,
                                                                                     monkeypatch):
    """A first plan made during a slow start (here 50 s per step, then 10 s) is corrected at a quarter of
    the budget; a constant schedule is never planned and runs until the clock stops it."""
    d = os.path.join(demo_small[0], "pretrain")
    state = {"t": 0.0, "n": 0}

    def tick() -> float:
        state["n"] += 1
        state["t"] += 50.0 if state["n"] <= 4 else 10.0  # start, steps 1-3 slow; then 10 s per step
        return state["t"]

    monkeypatch.setattr(budget, "now", tick)
    from models import ENCODERS
    from models.objectives import OBJECTIVES
    from train.config import load_config

    base = ["--method", "temporal_gap", "--shards", d, "--batch-size", "8", "--num-workers", "0",
            "--log-every", "1000", "--save-every", "1000", "--shuffle-buffer", "32", "--tracker", "none",
            "--max-minutes", "10", "--budget-plan-steps", "3"]
    out = tmp_path / "slow"
    s = train(load_config([*base, "--out", str(out), "--hp", "schedule=warmup_cosine"], sorted(OBJECTIVES),
                          sorted(ENCODERS)))
    plans = json.load(open(out / "budget.json"))["plans"]
    # elapsed: step 1 at 50 s, 2 at 100 s (a tenth of the budget: plan at 0.02 steps/s -> 2 + 10 = 12),
    # 3 at 150 s (a quarter: same rate, 12), then 10 s per step: at step 11 (230 s) the plan runs out
    # early and is extended at 0.1 steps/s (11 + 37 = 48); half and three quarters confirm it
    assert [(p["step"], p["planned_steps"]) for p in plans] == [(2, 12), (3, 12), (11, 48), (18, 48), (33, 48)]
    assert s["step"] == 48  # the slow start did not end the run at step 12
    state.update(t=0.0, n=0)
    out = tmp_path / "const"
    c = train(load_config([*base, "--out", str(out)], sorted(OBJECTIVES), sorted(ENCODERS)))
    # elapsed 150 s after step 3, then 10 s per step: step 48 reaches 600 s
    assert not (out / "budget.json").exists() and c["stopped_by"] == "time" and c["step"] == 48


def test_time_budget_rejects_bad_values():
    with pytest.raises(ValueError, match="positive"):
        TimeBudget(0.0)
    with pytest.raises(ValueError, match="positive"):
        TimeBudget(float("nan"))
    with pytest.raises(ValueError, match="budget-plan-steps"):
        TimeBudget(1.0, plan_steps=1)
    from models import ENCODERS
    from models.objectives import OBJECTIVES
    from train.config import load_config

    with pytest.raises(SystemExit, match="max-minutes"):
        load_config(["--method", "cola", "--max-minutes", "-1"], sorted(OBJECTIVES), sorted(ENCODERS))
