"""The streaming dataset: shards -> samples -> sampler -> batches, inside each DataLoader worker.

A WebDataset ``DataPipeline`` of our own stages (shard URLs, safe tar reading with corrupt-shard
counting, ``wds.shuffle`` of the still-compressed samples, lazy zstd decoding, the sampler, batching
and collation), one per worker.

Training mode (``mode='train'``): every (rank, worker) draws shards with replacement, weighted by
their sample counts, from its own generator seeded by ``(seed, rank, worker, resume_step)``: the stream
is endless, so DDP ranks never run dry at different times, and a resumed run does not replay the
sequence it already saw.

Training in epoch order (``order='epoch'``): every clip once per epoch, the global sequence of batches a
function of ``(seed, step)`` and the dataset alone, so a run resumes exactly on any world size or worker
count (``pipeline/epoch_plan.py``, ``pipeline/epoch_stream.py``, docs/training.md).

Evaluation mode (``mode='eval'``): shards are dealt to ranks, then to workers (largest first, to the
least loaded), so every clip is read exactly once.  From the manifests' sample counts every process
computes the same plan, and every rank yields the same number of batches, each exactly ``batch_size``
rows: a worker's last partial batch is filled with repeats of its own examples, and ranks with less
data add whole repeat batches; repeated rows have ``valid = False``.  Examples are drawn with a
generator seeded by ``(seed, clip key)``, so they do not depend on the number of ranks or workers.

Corrupt shards (unreadable, truncated, bad tar headers) and corrupt samples (missing members, bad
JSON, bad zstd/npy, shape mismatch, non-finite values) are skipped with a warning and counted in a
:class:`SkipCounter` shared by all workers; `skipped` counts samples (a corrupt shard adds the samples
its manifest lists that were not read), and the trainer logs it as ``corrupt_skipped``.
"""
from __future__ import annotations

import copy
import logging
import math
import multiprocessing as mp
import random
import zlib
from typing import Any, Iterator

import numpy as np
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from shards.redact import redact, redact_url

from .batch import USE_MMAP, _as_list, collate, open_shard  # noqa: F401  (public here too)
from .epoch_plan import DEFAULT_BLOCK, EpochPlan, RankLayout
from .epoch_stream import epoch_worker
from .manifests import DatasetFacts, ShardRef
from .samplers.base import Sampler
from .tario import CorruptSample, decode_clip, iter_tar_stream

log = logging.getLogger("melstream.pipeline")

ORDERS = ("resampled", "epoch")  # training data orders


class SkipCounter:
    """Counts shared by the main process and all DataLoader workers (a shared-memory array)."""

    FIELDS = ("corrupt_shards", "corrupt_samples", "padded_examples", "dropped_examples", "lost_samples")

    def __init__(self) -> None:
        self._arr = mp.Array("q", len(self.FIELDS))

    def add(self, field: str, n: int = 1) -> None:
        i = self.FIELDS.index(field)
        with self._arr.get_lock():
            self._arr[i] += int(n)

    def get(self, field: str) -> int:
        return int(self._arr[self.FIELDS.index(field)])

    def as_dict(self) -> dict[str, int]:
        with self._arr.get_lock():
            return {f: int(v) for f, v in zip(self.FIELDS, self._arr[:])}

    @property
    def corrupt_shards(self) -> int:
        return self.get("corrupt_shards")

    @property
    def corrupt_samples(self) -> int:
        return self.get("corrupt_samples")

    @property
    def lost_samples(self) -> int:
        """Samples a corrupt shard held (per its manifest) that were never read."""
        return self.get("lost_samples")

    @property
    def skipped(self) -> int:
        """Samples skipped so far: corrupt samples plus the unread rest of corrupt shards."""
        return self.corrupt_samples + self.lost_samples

    def __int__(self) -> int:
        """``int(info.skipped)``: samples skipped so far (the trainer's ``corrupt_skipped``)."""
        return self.skipped

    def __repr__(self) -> str:
        return f"SkipCounter({self.as_dict()})"


_BLAS_LIMIT = None


def _single_thread_blas() -> None:
    """In a DataLoader worker, keep numpy's BLAS to one thread (torch does the same for itself): the
    augmentations multiply small matrices, where BLAS threads only fight over the cores."""
    global _BLAS_LIMIT
    if _BLAS_LIMIT is None:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            return
        _BLAS_LIMIT = threadpool_limits(1, user_api="blas")


def deal(sizes: list[int], bins: int) -> list[list[int]]:
    """Indices of ``sizes`` dealt to ``bins`` bins, largest first to the least loaded (stable)."""
    out: list[list[int]] = [[] for _ in range(bins)]
    load = [0] * bins
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        b = min(range(bins), key=lambda b: (load[b], b))
        out[b].append(i)
        load[b] += sizes[i]
    return [sorted(o) for o in out]


class MelStream(IterableDataset):
    """One rank's stream of collated batches (see the module docstring)."""

    def __init__(self, facts: DatasetFacts, sampler: Sampler, batch_size: int, mode: str = "train", seed: int = 0,
                 rank: int = 0, world_size: int = 1, num_workers: int = 0, resume_step: int = 0,
                 shuffle_buffer: int = 1000, crops_per_clip: int = 1, allow_pipe: bool = False,
                 return_keys: bool = False, counter: SkipCounter | None = None, order: str = "resampled",
                 grad_accum: int = 1, block: int = DEFAULT_BLOCK):
        super().__init__()
        if mode not in ("train", "eval"):
            raise ValueError(f"mode must be 'train' or 'eval', not {mode!r}")
        if order not in ORDERS:
            raise ValueError(f"data order must be one of {ORDERS}, not {order!r}")
        if batch_size < 1 or crops_per_clip < 1:
            raise ValueError("batch_size and crops_per_clip must be >= 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.facts = facts
        self.shards: list[ShardRef] = list(facts.shards)
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.mode = mode
        self.seed = int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.num_workers = max(int(num_workers), 1)
        self.resume_step = int(resume_step)
        self.shuffle_buffer = int(shuffle_buffer)
        self.crops_per_clip = int(crops_per_clip)
        self.allow_pipe = allow_pipe
        self._count_warned: set[str] = set()  # shards whose sample count differs from the manifest (warned once)
        self.return_keys = return_keys
        self.counter = counter or SkipCounter()
        self.order = order if mode == "train" else "eval"
        self.grad_accum = int(grad_accum)
        self.global_batch = self.batch_size * self.world_size * self.grad_accum  # rows of one optimiser step
        self.block = int(block)
        if mode == "train" and sum(s.samples for s in self.shards) == 0:
            raise ValueError(f"no samples in {facts.dirs}")
        if self.order == "epoch":
            if self.crops_per_clip != 1:
                raise ValueError("epoch order reads every clip once per epoch: crops_per_clip must be 1")
            self.plan_epoch = EpochPlan([s.samples for s in self.shards], self.seed, self.global_batch, self.block)
            self.layout = RankLayout.make(self.global_batch, self.rank, self.world_size, self.num_workers)
            if self.layout.phases > 1:
                log.warning("epoch order: %d rows per rank for %d workers: %d workers share each lane group by steps, "
                            "each passing over the samples of the others' steps (use at most %d workers, or a "
                            "divisor of it, to give each worker lanes of its own)", self.layout.rows,
                            self.layout.workers, self.layout.phases, self.layout.rows)
            if getattr(sampler, "stateful", False):
                log.warning("sampler %s keeps state across examples (mixup memory, triplet pool) in each DataLoader "
                            "worker: in epoch order its examples are exact only at the same world size and workers "
                            "(the clips of every batch and their crops stay exact on any)", sampler.name)

    # ------------------------------------------------------------ planning (eval)

    def plan(self, num_workers: int | None = None) -> tuple[list[list[list[int]]], list[list[int]]]:
        """``(shards[rank][worker], batches[rank][worker])`` for evaluation mode."""
        nw = self.num_workers if num_workers is None else max(int(num_workers), 1)
        sizes = [s.samples for s in self.shards]
        per_rank = deal(sizes, self.world_size)
        shards, batches = [], []
        for r_idx in per_rank:
            per_worker = [[r_idx[i] for i in w] for w in deal([sizes[i] for i in r_idx], nw)]
            shards.append(per_worker)
            batches.append([math.ceil(sum(sizes[i] for i in w) * self.crops_per_clip / self.batch_size) for w in per_worker])
        target = max(sum(b) for b in batches)
        for b in batches:  # ranks with fewer batches pad whole batches, to their least busy workers
            for _ in range(target - sum(b)):
                b[min(range(nw), key=lambda w: (b[w], w))] += 1
        return shards, batches

    def __len__(self) -> int:
        if self.mode != "eval":
            raise TypeError("a training stream is endless: it has no length")
        return sum(self.plan()[1][self.rank])

    # ------------------------------------------------------------ stages

    def _read(self, refs: Iterator[ShardRef], endless: bool) -> Iterator[tuple[str, dict[str, bytes]]]:
        streak = 0
        for ref in refs:
            n = 0
            try:
                with open_shard(ref.url, allow_pipe=self.allow_pipe) as f:
                    for key, members in iter_tar_stream(f):
                        n += 1
                        yield key, members
                if n != ref.samples and ref.url not in self._count_warned:  # the plan trusts the manifest's count
                    self._count_warned.add(ref.url)
                    log.warning("shard %s holds %d samples but its manifest says %d (run `python -m shards verify`)",
                                redact_url(ref.url), n, ref.samples)
            except Exception as e:  # noqa: BLE001 - any failure of one shard: skip it, count it, go on
                self.counter.add("corrupt_shards")
                self.counter.add("lost_samples", max(int(ref.samples or 0) - n, 0))  # the unread rest
                log.warning("skipping the rest of shard %s after %d samples: %s: %s", redact_url(ref.url), n,
                            type(e).__name__, redact(str(e)))
            if endless:
                streak = 0 if n else streak + 1
                if streak > max(20, 3 * len(self.shards)):
                    raise RuntimeError(f"{streak} shards in a row gave no readable sample; giving up "
                                       f"(last: {redact_url(ref.url)})")

    def _examples(self, raw, sampler: Sampler, rng: np.random.Generator | None) -> Iterator[dict]:
        """Decode each sample and run the sampler ``crops_per_clip`` times; ``rng=None``: per-clip rng."""
        for key, members in raw:
            try:
                clip = decode_clip(key, members)
            except CorruptSample as e:
                self.counter.add("corrupt_samples")
                log.warning("skipping sample %s: %s", key, e)
                continue
            r = rng if rng is not None else np.random.default_rng([self.seed, zlib.crc32(key.encode())])
            try:
                for _ in range(self.crops_per_clip):
                    for ex in _as_list(sampler(clip, clip.meta, r)):
                        ex.setdefault("__key__", key)
                        yield ex
            except CorruptSample as e:
                self.counter.add("corrupt_samples")
                log.warning("skipping sample %s: %s", key, e)
        for ex in sampler.flush(rng if rng is not None else np.random.default_rng([self.seed, 0])):
            yield ex

    def _batches(self, examples: Iterator[dict], sampler: Sampler, rng: np.random.Generator) -> Iterator[dict]:
        buf: list[dict] = []
        for ex in examples:
            buf.append(ex)
            if len(buf) == self.batch_size:
                yield collate(buf, [True] * len(buf), sampler, rng, self.return_keys)
                buf = []

    # ------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[dict]:
        wi = get_worker_info()
        wid, nw = (wi.id, wi.num_workers) if wi is not None else (0, 1)
        if wi is not None:
            _single_thread_blas()
        sampler = copy.deepcopy(self.sampler)  # worker-local state (mixup memory, triplet pool)
        if self.order == "epoch":
            if nw != self.layout.workers:
                raise RuntimeError(f"epoch plan made for {self.layout.workers} workers, running with {nw}")
            return epoch_worker(self, wid, nw, sampler)
        if self.mode == "train":
            return self._train(wid, sampler)
        if nw != self.num_workers:
            raise RuntimeError(f"evaluation plan made for {self.num_workers} workers, running with {nw}")
        return self._eval(wid, sampler)

    def _train(self, wid: int, sampler: Sampler) -> Iterator[dict]:
        ss = np.random.SeedSequence([self.seed, self.rank, wid, self.resume_step])
        s_shards, s_shuffle, s_sampler, s_batch, s_ex = ss.spawn(5)
        pick = np.random.default_rng(s_shards)
        weights = np.array([s.samples for s in self.shards], dtype=np.float64)
        weights /= weights.sum()
        n = len(self.shards)

        def refs() -> Iterator[ShardRef]:
            while True:
                yield self.shards[int(pick.choice(n, p=weights))]

        rng = np.random.default_rng(s_sampler)
        stages: list[Any] = [refs, lambda src: self._read(src, endless=True)]
        if self.shuffle_buffer > 1:
            stages.append(wds.shuffle(self.shuffle_buffer, initial=min(100, self.shuffle_buffer),
                                      rng=random.Random(int(s_shuffle.generate_state(1)[0]))))
        stages.append(lambda src: self._examples(src, sampler, rng))
        if self.crops_per_clip > 1:  # spread the crops of one clip over several batches
            stages.append(wds.shuffle(16 * self.crops_per_clip, initial=8 * self.crops_per_clip,
                                      rng=random.Random(int(s_ex.generate_state(1)[0]))))
        stages.append(lambda src: self._batches(src, sampler, np.random.default_rng(s_batch)))
        return iter(wds.DataPipeline(*stages))

    def _padding_template(self) -> list[dict]:
        """Examples to repeat when a worker has none of its own: the sampler run on silent clips."""
        s = copy.deepcopy(self.sampler)
        rng = np.random.default_rng([self.seed, 1])
        mel = np.zeros((self.facts.n_mels, max(s.min_frames, 1)), dtype=np.float32)
        out = []
        for k in ("pad-a", "pad-b"):
            out += _as_list(s(mel, {"key": k, "labels": []}, rng))
        out += s.flush(rng)
        return out[:1]

    def _eval(self, wid: int, sampler: Sampler) -> Iterator[dict]:
        shards, batches = self.plan()
        mine = [self.shards[i] for i in shards[self.rank][wid]]
        want = batches[self.rank][wid]
        rng = np.random.default_rng([self.seed, self.rank, wid])
        b = self.batch_size
        made = 0
        buf: list[dict] = []
        last: list[dict] = []
        extra = 0
        if want == 0:
            return
        for ex in self._examples(self._read(iter(mine), endless=False), sampler, None):
            if made == want:
                extra += 1
                continue
            buf.append(ex)
            if len(buf) == b:
                yield collate(buf, [True] * b, sampler, rng, self.return_keys)
                made += 1
                last, buf = buf, []
        if extra:
            self.counter.add("dropped_examples", extra)
            log.warning("worker %d of rank %d read %d more examples than the manifests announce; dropped them to keep "
                        "all ranks in step", wid, self.rank, extra)
        if made == want:
            return
        pool = buf or last or self._padding_template()
        if buf:  # last partial batch, filled with repeats of its own rows
            n_real = len(buf)
            rows = buf + [pool[i % n_real] for i in range(b - n_real)]
            self.counter.add("padded_examples", b - n_real)
            yield collate(rows, [True] * n_real + [False] * (b - n_real), sampler, rng, self.return_keys)
            made += 1
        while made < want:
            rows = [pool[i % len(pool)] for i in range(b)]
            self.counter.add("padded_examples", b)
            yield collate(rows, [False] * b, sampler, rng, self.return_keys)
            made += 1
