"""m2d under DDP (one spawn of 2 gloo CPU processes): each rank takes half of the batch; the averaged loss,
the DDP-averaged gradients and every parameter and buffer after two AdamW steps with the EMA ramp (online
encoder, predictor, target encoder, ``ema_step``) equal single-process training on the full batch."""
from __future__ import annotations

import datetime
import faulthandler
import os
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

import models
from models.objectives import build_objective
from pipeline.samplers.patch_mask import random_mask

WORLD, B, STEPS = 2, 4, 2
TOL = dict(rtol=1e-7, atol=1e-9)  # float64
TIMEOUT = 120


def _objective():
    torch.manual_seed(1234)
    enc = models.build_encoder("vit_tiny", n_mels=16, n_frames=32, patch_size=8, depth=1)
    o = build_objective("m2d", enc, n_frames=32, predictor_depth=1, predictor_dim=16, predictor_heads=2,
                        ema_tau_start=0.5, ema_tau=0.9).double()  # fast EMA: the target visibly moves
    o.set_total_steps(STEPS)
    return o


def _batches():
    g = torch.Generator().manual_seed(99)
    rng = np.random.default_rng(5)
    return [{"x": torch.randn(B, 1, 16, 32, generator=g, dtype=torch.float64),
             "mask": torch.from_numpy(np.stack([random_mask(8, 0.7, rng) for _ in range(B)]))} for _ in range(STEPS)]


def _train(obj, model, batches):
    opt = torch.optim.AdamW([p for _, p in obj.trainable_named_parameters()], lr=1e-2)
    recs = []
    for batch in batches:
        opt.zero_grad(set_to_none=True)
        loss = model(batch)["loss"]
        loss.backward()
        recs.append({"loss": loss.detach().clone(),
                     "grads": {n: p.grad.detach().clone() for n, p in obj.trainable_named_parameters()}})
        opt.step()
        obj.after_step()
    return recs, {k: v.detach().clone() for k, v in obj.state_dict().items()}


def _worker(rank, init_file, ref, out_dir):
    torch.set_num_threads(1)
    stack = open(os.path.join(out_dir, f"stack{rank}.txt"), "w")
    faulthandler.dump_traceback_later(TIMEOUT, exit=True, file=stack)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=60))
    fails = []
    try:
        obj = _objective()
        ddp = nn.parallel.DistributedDataParallel(obj)
        h = B // WORLD
        local = [{k: v[rank * h:(rank + 1) * h] for k, v in b.items()} for b in _batches()]
        recs, final = _train(obj, ddp, local)
        ref_recs, ref_final = ref
        for s, (r, rr) in enumerate(zip(recs, ref_recs)):
            mean = r["loss"].clone()
            dist.all_reduce(mean)
            mean /= WORLD
            if not torch.allclose(mean, rr["loss"], **TOL):
                fails.append(f"rank {rank} step {s}: loss {mean} vs {rr['loss']}")
            for k in rr["grads"]:
                if not torch.allclose(r["grads"][k], rr["grads"][k], **TOL):
                    fails.append(f"rank {rank} step {s}: grad {k}")
        for k in ref_final:
            if not torch.allclose(final[k].double(), ref_final[k].double(), **TOL):
                fails.append(f"rank {rank}: final {k}")
        del ddp, obj
    except Exception as e:  # noqa: BLE001 - reported to the parent
        fails.append(f"rank {rank}: {type(e).__name__}: {e}"[:1500])
    finally:
        with open(os.path.join(out_dir, f"rank{rank}.txt"), "w") as f:
            f.write("\n".join(fails))
        dist.barrier()
        faulthandler.cancel_dump_traceback_later()
        stack.close()
        os._exit(0)  # as the trainer: no process-group teardown (pytorch#75097)


def test_m2d_ddp_matches_full_batch(tmp_path):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        obj = _objective()
        ref = _train(obj, obj, _batches())
    finally:
        torch.set_num_threads(n)
    assert int(ref[1]["ema_step"]) == STEPS and torch.isfinite(ref[0][0]["loss"])
    assert not torch.allclose(ref[1]["target_encoder.blocks_.0.attn.qkv.weight"],
                              _objective().state_dict()["target_encoder.blocks_.0.attn.qkv.weight"])
    ctx = mp.spawn(_worker, args=(str(tmp_path / "init"), ref, str(tmp_path)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + TIMEOUT + 30
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                raise TimeoutError("DDP workers did not finish")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.terminate()
    fails = [(tmp_path / f"rank{r}.txt").read_text() for r in range(WORLD)]
    assert fails == ["", ""], "\n".join(fails)
