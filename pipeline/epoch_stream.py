"""Reading the epoch order (``pipeline/epoch_plan.py``) inside a DataLoader worker, and putting a rank's
batches back together in the main process.

A :class:`LaneCursor` reads one lane of one epoch front to back: it opens the shard a block starts in
(seeking mid-shard by skipping members without decoding them), crosses into the next shard of the epoch's
order when one ends, and keeps only the samples its worker will turn into rows.  A shard that fails, or
holds fewer samples than its manifest says, leaves its missing clips as rows of the padding template with
``valid = False`` (counted); samples beyond the manifest's count are never read.

Every row's sampler randomness comes from a counter-based generator (:class:`CounterRng`, Philox) keyed
by the seed and positioned at ``(step, lane)``, set per row (about 1.4 us), so a crop is the same whatever
the world size or the number of workers.  Batch-level transforms (``sampler.collate``) get ``(step, first lane of the part)``.
"""
from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import torch

from shards.redact import redact, redact_url

from .batch import collate, open_shard
from .epoch_plan import CounterRng, EpochPlan, RankLayout
from .tario import CorruptSample, decode_clip, iter_tar_stream

if TYPE_CHECKING:
    from .samplers.base import Sampler

log = logging.getLogger("melstream.pipeline")


class LaneCursor:
    """Sequential reader of lane ``lane`` in epoch ``epoch``: ``read(first, count, keep)`` returns the samples
    at reading-order indices ``keep`` among ``[first, first + count)``, as ``{index: (key, members) | None}``."""

    def __init__(self, plan: EpochPlan, epoch: int, lane: int, urls: list[str], open_fn: Callable[[str], Any],
                 counter: Any) -> None:
        self.plan, self.epoch, self.lane = plan, epoch, lane
        self.urls, self.open_fn, self.counter = urls, open_fn, counter
        self.order, self.ends = plan.shard_order(epoch)
        self.start = plan.lane_start(lane)
        self._stack = contextlib.ExitStack()
        self._it: Iterator | None = None
        self._j = -1  # index into the epoch's shard order of the open shard
        self._g = -1  # global position of the next sample the open iterator gives
        self._end = -1  # global position where the open shard ends

    def close(self) -> None:
        self._it = None
        self._stack.close()

    def _open(self, g: int) -> None:
        self.close()
        self._stack = contextlib.ExitStack()
        j, off = self.plan.locate(self.epoch, g)
        self._j, self._end = j, int(self.ends[j])
        self._g = g - off
        url = self.urls[int(self.order[j])]
        try:
            f = self._stack.enter_context(self.open_fn(url))
            self._it = iter_tar_stream(f)
        except Exception as e:  # noqa: BLE001 - one unreadable shard: its clips become padding rows
            self._fail(url, e)
        while self._g < g:  # seek: skip members without decoding them
            self._next()

    def _fail(self, url: str, e: BaseException) -> None:
        self.counter.add("corrupt_shards")
        log.warning("epoch order: shard %s unreadable after %d of its samples (%s: %s); its remaining clips become "
                    "padding rows", redact_url(url), self._g - (self._end - int(self.plan.sizes[int(self.order[self._j])])),
                    type(e).__name__, redact(str(e))[:200])
        self._it = None

    def _next(self) -> tuple[str, dict] | None:
        self._g += 1
        if self._it is None:
            return None
        try:
            return next(self._it)
        except StopIteration:  # fewer samples than the manifest says
            self._fail(self.urls[int(self.order[self._j])], EOFError("shard ends before its manifest's count"))
        except Exception as e:  # noqa: BLE001
            self._fail(self.urls[int(self.order[self._j])], e)
        return None

    def read(self, first: int, count: int, keep: set[int]) -> dict[int, tuple[str, dict] | None]:
        out: dict[int, tuple[str, dict] | None] = {}
        g0 = self.start + first
        if self._j < 0 or not self._g <= g0 < self._end:
            self._open(g0)
        while self._g < g0:
            self._next()
        for s in range(first, first + count):
            if self._g >= self._end:
                self._open(self._g)
            item = self._next()
            if s in keep:
                out[s] = item
        return out


def _first(out: Any) -> dict | None:
    if isinstance(out, list):
        return out[0] if out else None
    return out


def epoch_worker(ds: Any, wid: int, nw: int, sampler: "Sampler") -> Iterator[dict]:
    """Worker ``wid`` of ``nw``: one collated part (its lanes' rows) per step it owns, endlessly."""

    plan = EpochPlan([s.samples for s in ds.shards], ds.seed, ds.global_batch, ds.block)
    lay = RankLayout.make(ds.global_batch, ds.rank, ds.world_size, nw)
    lanes, phase = lay.worker(wid)
    urls = [s.url for s in ds.shards]
    spe = plan.steps_per_epoch
    rng = CounterRng(ds.seed, 0x726F77)  # 'row'
    template = ds._padding_template()[0]
    start = ds.resume_step

    def open_fn(url: str) -> Any:
        return open_shard(url, allow_pipe=ds.allow_pipe)

    def mine(e: int, pos: int) -> bool:
        t = e * spe + pos
        return t >= start and (t - start) % lay.phases == phase

    epoch = -1
    cursors: dict[int, LaneCursor] = {}
    blocks: dict[int, tuple[int, int, np.ndarray, dict]] = {}  # lane -> (first position, end, perm, samples)
    lens = {p: plan.lane_len(p) for p in lanes}
    t = start + phase
    try:
        while True:
            e, pos = plan.step_pos(t)
            if e != epoch:
                for c in cursors.values():
                    c.close()
                epoch = e
                cursors = {p: LaneCursor(plan, e, p, urls, open_fn, ds.counter) for p in lanes}
                blocks = {}
            rows, valid = [], []
            for p in lanes:
                n = lens[p]
                q = pos if pos < n else n - 1  # a short lane's padding row repeats its last clip
                blk = blocks.get(p)
                if blk is None or not blk[0] <= q < blk[1]:
                    b = plan.block_of(p, pos)
                    perm = plan.block_perm(e, p, b)
                    a = plan.block_range(p, b)[0]
                    cand = list(range(a, a + len(perm))) + ([spe - 1] if a + len(perm) >= n and n < spe else [])
                    keep = {a + int(perm[min(c, n - 1) - a]) for c in cand if mine(e, c)}
                    blk = blocks[p] = (a, a + len(perm), perm, cursors[p].read(a, len(perm), keep))
                s, ok = blk[0] + int(blk[2][q - blk[0]]), pos < n
                raw = blk[3].get(s)  # a short lane's last clip is read twice
                ex = None
                if raw is None:
                    ds.counter.add("lost_samples")
                else:
                    try:
                        clip = decode_clip(*raw)
                        ex = _first(sampler(clip, clip.meta, rng.at(t, p)))
                    except CorruptSample as err:
                        ds.counter.add("corrupt_samples")
                        log.warning("skipping sample %s (padding row instead): %s", raw[0], err)
                if ex is None:
                    ex, ok = dict(template, __key__=""), False
                else:
                    ex.setdefault("__key__", raw[0] if raw is not None else "")
                if not ok:
                    ds.counter.add("padded_examples")
                rows.append(ex)
                valid.append(ok)
            yield collate(rows, valid, sampler, rng.at(t, lanes[0], 1), ds.return_keys)
            t += lay.phases
    finally:
        for c in cursors.values():
            c.close()


def _merge(parts: list[dict]) -> dict:
    out: dict[str, Any] = {}
    for k, v in parts[0].items():
        if torch.is_tensor(v):
            out[k] = torch.cat([p[k] for p in parts], 0)
        else:
            out[k] = [x for p in parts for x in p[k]]
    return out


def _rows(batch: dict, a: int, b: int) -> dict:
    return {k: v[a:b] for k, v in batch.items()}


class StepBatches:
    """The rank's stream in epoch order: ``groups`` consecutive DataLoader items (one per lane group, in
    order: the DataLoader takes its workers' items in turn) make one step's batch of ``rows`` rows, cut
    into ``grad_accum`` micro-batches.  Iterate it like the DataLoader it wraps."""

    def __init__(self, loader: Any, layout: RankLayout, grad_accum: int) -> None:
        if layout.rows % grad_accum:
            raise ValueError(f"epoch order: {layout.rows} rows per rank cannot be cut into {grad_accum} micro-batches")
        self.loader, self.layout, self.grad_accum = loader, layout, int(grad_accum)
        self.dataset = loader.dataset

    def __iter__(self) -> Iterator[dict]:
        it = iter(self.loader)
        g, m = self.layout.groups, self.layout.rows // self.grad_accum
        while True:
            try:
                parts = [next(it) for _ in range(g)]
            except StopIteration:
                return
            whole = parts[0] if g == 1 else _merge(parts)
            if self.grad_accum == 1:
                yield whole
            else:
                for a in range(self.grad_accum):
                    yield _rows(whole, a * m, (a + 1) * m)
