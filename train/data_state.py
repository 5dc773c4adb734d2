"""The data-order state a checkpoint records (``data_state.json``) and the check a resume makes with it.

Epoch order (``--data-order epoch``): the batches of step ``s + 1`` on are a function of the seed, the step,
the global batch and the dataset (``pipeline/epoch_plan.py``), so that is all a resume needs, whatever the
world size and workers of either run.  A resume that changes the order, the seed or the global batch is
refused with one line (it would silently train on another sequence); a changed dataset is a warning (the
new dataset's order is used from the same step on).
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any

from pipeline import EpochPlan, dataset_fingerprint

log = logging.getLogger("melstream.train")

FILE = "data_state.json"


def data_state(data_order: str, seed: int, step: int, global_batch: int, facts: Any, world_size: int,
               num_workers: int) -> dict[str, Any]:
    out: dict[str, Any] = {"data_order": data_order, "seed": int(seed), "step": int(step),
                           "global_batch": int(global_batch),
                           "dataset": dataset_fingerprint((s.url, s.samples) for s in facts.shards),
                           "num_clips": int(facts.num_clips), "world_size": int(world_size),
                           "num_workers": int(num_workers)}
    if data_order == "epoch":
        plan = EpochPlan([s.samples for s in facts.shards], seed, global_batch)
        out.update(block=plan.block, steps_per_epoch=plan.steps_per_epoch, epoch=int(step) // plan.steps_per_epoch)
    return out


def read_data_state(ckpt: str) -> dict[str, Any] | None:
    """The state in checkpoint directory ``ckpt``; ``None`` for checkpoints written before it existed."""
    p = os.path.join(ckpt, FILE)
    if not os.path.isfile(p):
        return None
    try:
        with open(p, encoding="utf-8") as f:
            st = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"--resume: {p}: unreadable ({e})") from None
    if not isinstance(st, dict):
        raise ValueError(f"--resume: {p}: expected a JSON object")
    return st


def check_resume(saved: dict[str, Any] | None, now: dict[str, Any], where: str) -> None:
    """Refuse (``ValueError``, one line) a resume that cannot continue the checkpoint's data order."""
    if saved is None:
        if now["data_order"] == "epoch":
            log.warning("--resume: %s records no data order (written before data_state.json); continuing in "
                        "epoch order at step %d", where, now["step"])
        return
    if saved.get("data_order", "resampled") != now["data_order"]:
        raise ValueError(f"--resume: {where} was trained with --data-order {saved.get('data_order')}, not "
                         f"{now['data_order']}; resume with the same order")
    if now["data_order"] != "epoch":
        return
    for k, flag in (("global_batch", "--batch-size"), ("seed", "--seed"), ("block", "the epoch block size")):
        if saved.get(k) != now[k]:
            raise ValueError(f"--resume: {where} was trained with {flag} {saved.get(k)}, not {now[k]}: the epoch "
                             f"order depends on it (the world size and --num-workers may change, it may not)")
    if saved.get("dataset") != now["dataset"]:
        log.warning("--resume: the shards differ from those of %s (%s clips then, %s now): continuing in the new "
                    "dataset's epoch order from step %d, not the old sequence", where, saved.get("num_clips"),
                    now["num_clips"], now["step"])
