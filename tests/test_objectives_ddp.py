"""DDP equivalence of the batch-coupled objectives (one spawn of 2 gloo processes on CPU).

Each rank runs half of the batch through the objective wrapped in DistributedDataParallel; the
losses, DDP-averaged gradients, the MoCo queue and the parameters after two SGD steps (with
``after_step`` EMA updates) must equal single-process training on the full batch. Heads are
BN-free here: BatchNorm inside projectors is made global by the trainer's SyncBatchNorm conversion,
which gloo/CPU does not support.
"""

from __future__ import annotations

import datetime
import faulthandler
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from models import distributed as D
from models.objectives import build_objective

WORLD = 2
B = 8  # global batch; 4 per rank
NM, NF = 4, 6  # tiny inputs [B, 1, 4, 6]
STEPS = 2
LR = 0.1
WORKER_TIMEOUT = 120  # s; a rank stuck longer dumps its stack and exits
TOL = dict(rtol=1e-7, atol=1e-9)  # float64 everywhere; the brief's bar is 1e-5

CONFIGS = {
    "barlow_twins": dict(proj_units=6, norm=None, proj_dropout=0.0, lambd=0.3),
    "simclr": dict(proj_hidden=6, proj_layers=1, proj_dim=5, norm=None, temperature=0.2),
    "cola": dict(head_dim=5),
    "multi_strategy": dict(head_dim=5),
    "delores_m": dict(block_proj_units=6, norm=None, proj_dropout=0.0, queue_size=20, out_dim=5, barlow_weight=0.5),
}
COUPLED = {"barlow_twins", "simclr", "cola"}  # every rank itself must report the full-batch loss


class LinearEncoder(nn.Module):
    """A linear 'encoder' with the encoder interface (no BatchNorm, no dropout). Only the parts an
    objective uses are built, so DDP needs no ``find_unused_parameters``."""

    name = "linear"

    def __init__(self, parts: tuple[str, ...] = ("lin",), d: int = 6, frame_dim: int = 4):
        super().__init__()
        self.n_mels, self.embedding_dim, self.frame_dim = NM, d, frame_dim
        if "lin" in parts:
            self.lin = nn.Linear(NM * NF, d)
        if "frames" in parts:
            self.fr = nn.Linear(NM * NF, 3 * frame_dim)
        if "blocks" in parts:
            self.blk = nn.Linear(NM * NF, 4 * 2 * 3)

    def forward(self, x):
        return self.lin(x.flatten(1))

    def frames(self, x):
        return torch.tanh(self.fr(x.flatten(1))).view(x.shape[0], 3, self.frame_dim)

    def blocks(self, x):
        h = torch.tanh(self.blk(x.flatten(1))).view(x.shape[0], 4, 2, 3)
        return [h, h[:, :, :1, :2] * 2.0]


PARTS = {"multi_strategy": ("frames",), "delores_m": ("lin", "blocks")}


def _objective(name):
    torch.manual_seed(1234)
    enc = LinearEncoder(PARTS.get(name, ("lin",)))
    return build_objective(name, enc, n_frames=NF, **CONFIGS[name]).double()


def _batches(name):
    g = torch.Generator().manual_seed(99)
    out = []
    for _ in range(STEPS):
        x = lambda: torch.randn(B, 1, NM, NF, generator=g, dtype=torch.float64)  # noqa: E731
        b = {"x1": x(), "x2": x()}
        if name == "multi_strategy":
            b["x_pitch"] = x()
            b["pitch_factor"] = 0.8 + 0.4 * torch.rand(B, generator=g, dtype=torch.float64)
        out.append(b)
    return out


def _train(obj, model, batches):
    """STEPS of SGD; returns per-step loss, grads, queue, and final parameters."""
    params = [p for _, p in obj.trainable_named_parameters()]
    opt = torch.optim.SGD(params, lr=LR)
    recs = []
    for batch in batches:
        opt.zero_grad(set_to_none=True)
        loss = model(batch)["loss"]
        loss.backward()
        rec = {
            "loss": loss.detach().clone(),
            "grads": {n: p.grad.detach().clone() for n, p in obj.trainable_named_parameters()},
        }
        if hasattr(obj, "queue"):
            rec["queue"] = obj.queue.clone()
            rec["ptr"] = obj.queue_ptr.clone()
        opt.step()
        obj.after_step()
        recs.append(rec)
    final = {k: v.detach().clone() for k, v in obj.state_dict().items()}
    return recs, final


def _reference():
    ref = {}
    for name in CONFIGS:
        obj = _objective(name)
        ref[name] = _train(obj, obj, _batches(name))
    return ref


def _worker(rank, init_file, ref, errors_dir):
    torch.set_num_threads(1)
    stack_file = open(os.path.join(errors_dir, f"stack{rank}.txt"), "w")
    faulthandler.dump_traceback_later(WORKER_TIMEOUT, exit=True, file=stack_file)  # a hung rank reports itself
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD,
        timeout=datetime.timedelta(seconds=60),
    )
    failures = []

    def check(ok, *msg):  # record instead of raising: both ranks keep issuing the same collectives
        if not bool(ok):
            failures.append(f"rank {rank}: " + " ".join(str(m) for m in msg)[:1500])

    try:
        check(D.is_distributed() and D.world_size() == WORLD and D.rank() == rank, "helpers: world/rank")

        # gather_with_grad / gather_no_grad with ragged sizes: values, offsets, summed gradient
        n_local = 2 + rank  # 2 rows on rank 0, 3 on rank 1
        t = torch.full((n_local, 2), float(rank), dtype=torch.float64, requires_grad=True)
        g = D.gather_with_grad(t)
        check(g.shape == (5, 2) and torch.equal(g[:2], torch.zeros(2, 2, dtype=torch.float64))
              and torch.equal(g[2:], torch.ones(3, 2, dtype=torch.float64)), "gather values", g)
        check(torch.equal(D.gather_no_grad(t), g.detach()), "gather_no_grad")
        w = torch.arange(10, dtype=torch.float64).view(5, 2) * (rank + 1)  # rank-dependent upstream grads
        (g * w).sum().backward()
        full = torch.arange(10, dtype=torch.float64).view(5, 2) * 3  # summed over ranks (1 + 2)
        want = full[:2] if rank == 0 else full[2:]
        check(torch.equal(t.grad, want), "gather backward", t.grad, want)

        for name in CONFIGS:
            obj = _objective(name)
            ddp = nn.parallel.DistributedDataParallel(obj)
            half = B // WORLD
            local = [{k: v[rank * half:(rank + 1) * half] for k, v in b.items()} for b in _batches(name)]
            recs, final = _train(obj, ddp, local)
            ref_recs, ref_final = ref[name]
            for step, (r, rr) in enumerate(zip(recs, ref_recs)):
                mean_loss = D.all_reduce_mean(r["loss"])
                check(torch.allclose(mean_loss, rr["loss"], **TOL), name, step, "mean loss", mean_loss, rr["loss"])
                if name in COUPLED:
                    check(torch.allclose(r["loss"], rr["loss"], **TOL), name, step, "rank loss", r["loss"], rr["loss"])
                check(r["grads"].keys() == rr["grads"].keys(), name, "grad keys")
                for k in rr["grads"]:
                    check(torch.allclose(r["grads"][k], rr["grads"][k], **TOL), name, step, "grad", k)
                if "queue" in rr:
                    check(torch.allclose(r["queue"], rr["queue"], **TOL), name, step, "queue")
                    check(int(r["ptr"]) == int(rr["ptr"]) == (2 * B * (step + 1)) % 20, name, step, "ptr", r["ptr"])
                    both = D.gather_no_grad(r["queue"][None])
                    check(torch.equal(both[0], both[1]), name, step, "queue differs across ranks")
            for k in ref_final:
                check(torch.allclose(final[k], ref_final[k], **TOL), name, "final state", k)
            del ddp, obj  # release the DDP reducer while the peer is alive (a late destructor can hang)
    except Exception as e:  # noqa: BLE001 - report anything, the parent asserts
        failures.append(f"rank {rank}: {type(e).__name__}: {e}"[:1500])
    finally:
        with open(os.path.join(errors_dir, f"rank{rank}.txt"), "w") as f:
            f.write("\n".join(failures))
        dist.barrier()
        # Leave as the trainer does (train/loop.py shutdown_distributed): no destroy_process_group and
        # no destructors, which can block for good once the peer has gone (pytorch#75097).
        faulthandler.cancel_dump_traceback_later()
        stack_file.close()
        os._exit(0)


def test_ddp_matches_single_process_full_batch(tmp_path):
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = _reference()
    finally:
        torch.set_num_threads(n_threads)
    # sanity: the references are non-trivial (losses finite, the queue pointer wraps)
    assert all(torch.isfinite(r[0][0]["loss"]) for r in ref.values())
    assert int(ref["delores_m"][0][1]["ptr"]) == (2 * B * 2) % 20
    ctx = mp.spawn(_worker, args=(str(tmp_path / "init"), ref, str(tmp_path)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + WORKER_TIMEOUT + 30
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                raise TimeoutError("DDP workers did not finish")
    except Exception as e:
        stacks = [(tmp_path / f"stack{r}.txt").read_text() for r in range(WORLD) if (tmp_path / f"stack{r}.txt").exists()]
        raise AssertionError(f"{e}\n" + "\n".join(stacks)) from e
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.terminate()
    failures = [(tmp_path / f"rank{r}.txt").read_text() for r in range(WORLD)]
    assert failures == ["", ""], "\n".join(failures)
