"""``--max-minutes``: stop at a step boundary, checkpoint + export, ``stopped_by``, resume with a fresh
clock, and a schedule planned from the measured steps/s.  The budget's clock is replaced by one that
advances 10 s per reading, so the stopping step is exact (no timing enters an assertion)."""
from __future__ import annotations

import json
import math
import os

import pytest

import train.budget as budget
from train.budget import TimeBudget
from train.loop import train
from tests.test_train import _cfg


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


def test_time_budget_plans_the_schedule_from_the_measured_rate(demo_small, tmp_path, fake_clock):
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
    # clock: start 10, step k at 10 + 10 k; planned at step 3 from steps 1-3: 0.1 steps/s x (600 - 30) s
    plan = json.load(open(out / "budget.json"))
    assert plan["planned_steps"] == 3 + 57 and plan["planned_at_step"] == 3 and plan["steps_per_s"] == 0.1
    assert s["step"] == 60
    rows = _rows(out)
    assert rows[1]["lr"] > 0.99e-4  # before the plan: the 300k-step cosine barely moved
    for r in rows[3:]:  # after it: a cosine over 60 steps that ends at 0
        assert abs(r["lr"] - 1e-4 * 0.5 * (1 + math.cos(math.pi * (r["step"] - 1) / 59))) < 1e-12
    assert rows[-1]["lr"] == pytest.approx(0.0, abs=1e-15)
    # --resume without --steps keeps the planned length (the run is complete: nothing to do)
    again = train(load_config([*argv, "--resume"], sorted(OBJECTIVES), sorted(ENCODERS)))
    assert again["step"] == 60 and again["losses"] == [] and again["stopped_by"] == "steps"


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
