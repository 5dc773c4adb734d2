"""The ingest engine: items from a source -> decode -> frontend -> shards, resumable and parallel.

Plan: the items of each split are sorted by key and cut into consecutive groups of at most
``--shard-size`` clips and estimated bytes; group ``i`` becomes shard ``<dataset>-<split>-%06d.tar``.
The plan depends only on the item list, so the keys and bytes of every sample do not depend on
``--workers`` or ``--num-jobs`` (job ``j`` of ``N`` writes the shards with ``i % N == j``).  A shard is
finished when its tar and its sidecar record exist and the tar's size matches; a rerun skips finished
shards (a shard whose record lists transient failures is redone so they are retried).  Worker
processes decode groups of ``decode_batch`` items (decode, checks, log-mel, codec), whichever shard they
belong to; the main process writes their samples in plan order, one shard at a time, shows the progress
bar and, when the plan is complete, builds ``manifest.json`` and ``failures.jsonl``.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

import numpy as np

from shards import ShardWriter, build_manifest, shard_name
from shards.bounded import MAX_RECORD_BYTES, load_json_bounded
from shards.codec import DEFAULT_LEVEL
from shards.format import MAX_KEY_LEN, PARTS_DIR, InvalidKey, check_name, fit_key
from shards.frontend import DEFAULT_PRESET, FrontendConfig, get_preset, logmel
from shards.reader import decode_members, iter_tar_samples
from shards.redact import redact_url
from shards.writer import EncodedSample, encode_sample

from .bounds import check_config, shard_limits, usable_cores
from .decode import DecodeError
from .progress import ClipProgress, counter

log = logging.getLogger("melstream.ingest")


@dataclass(slots=True)
class Item:
    """One clip to ingest.  ``key`` is unique and stable; ``origin`` a path or URL."""

    key: str
    source_id: str
    origin: str
    split: str = "train"
    labels: list[str] = field(default_factory=list)
    start: float | None = None
    end: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class SkipItem(Exception):
    """Raised by a source's ``load`` for input that must not enter a shard.

    ``reason`` is a short class (``undecodable``, ``empty``, ``too_short``, ``silent``,
    ``unavailable`` ...); ``permanent=False`` marks failures worth retrying on a later run.
    """

    def __init__(self, reason: str, message: str = "", permanent: bool = True, attempts: int = 1):
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message
        self.permanent = permanent
        self.attempts = attempts


class Source(Protocol):
    """A dataset to ingest.  A source may also define ``load_many(items, sample_rate)``: a list
    with, per item, its audio, the exception ``load`` would raise, or None (then ``load`` is used)."""

    dataset: str

    def items(self) -> list[Item]: ...

    def load(self, item: Item, sample_rate: int) -> np.ndarray: ...


# Default --shard-size: 1000 clips or about 256 MB, whichever comes first (WebDataset recommends 100 MB-1 GB
# shards); 1000 ten-second clips make about 100 MB, so the byte limit matters for long recordings.
DEFAULT_SHARD_SIZE = "1000,256MB"
# Items a source's ``load_many`` decodes at once (one ffmpeg process for the folder source).
DECODE_BATCH = 16


@dataclass
class IngestConfig:
    out: str
    preset: str = DEFAULT_PRESET
    codec: str = "f16chunks"
    level: int = DEFAULT_LEVEL
    shard_size: str = DEFAULT_SHARD_SIZE
    workers: int = 1
    num_jobs: int = 1
    job_index: int = 0
    min_seconds: float = 0.0
    limit: int | None = None
    progress: bool = True
    retry_transient: bool = True
    decode_batch: int = DECODE_BATCH  # items per ``load_many`` call; 1: ``load`` item by item
    merge: bool = False  # write nothing: build the manifests from the shards of all jobs of an array
    segment_seconds: float = 0.0  # > 0: cut longer recordings into clips of about this length (see segments())
    threads: int = 0  # torch intra-op threads per decoding process; 0: max(1, cores // workers) (threads_per_worker)


def threads_per_worker(cfg: IngestConfig) -> int:
    """Torch intra-op threads of each decoding process: ``cfg.threads``, or ``max(1, cores // workers)`` so that
    ``workers`` processes do not fight over the cores (the log-mel is the only multi-threaded step)."""
    if cfg.threads < 0:
        raise ValueError(f"--threads {cfg.threads} must be >= 0 (0: cores // workers)")
    return cfg.threads or max(1, usable_cores() // max(1, cfg.workers))


def samples_per_shard(spec: str, est_bytes_per_item: float = 100_000.0) -> int:
    """``"1000"`` -> 1000 samples; ``"200MB"`` -> samples estimated from ~100 KB per 10-s clip."""
    count, nbytes = shard_limits(spec)
    if count is not None and nbytes is None:
        return count
    by_bytes = max(1, int(nbytes // est_bytes_per_item))
    return by_bytes if count is None else min(count, by_bytes)


def estimate_bytes(source: "Source", item: Item, fe: FrontendConfig) -> float:
    """Shard bytes an item will take, known before decoding so the shard plan stays deterministic.

    From its duration (``end - start``, or the source's ``estimate_seconds(item)``) at about 80 % of
    float16 log-mel bytes (the lossless codecs' ratio), else the size of its file (compressed audio is
    at least that large), else 100 KB (a 10-s clip)."""
    seconds = (item.end - item.start) if (item.start is not None and item.end is not None) else None
    if seconds is None and hasattr(source, "estimate_seconds"):
        seconds = source.estimate_seconds(item)
    if seconds is not None:
        return 0.8 * 2 * fe.n_mels * (1 + seconds * fe.sample_rate / fe.hop_length)
    try:
        return float(os.path.getsize(item.origin))
    except (OSError, TypeError, ValueError):
        return 100_000.0


def check_clip(wav: np.ndarray, fe: FrontendConfig, min_seconds: float = 0.0,
               expected_seconds: float | None = None, tolerance: float = 0.5) -> None:
    """Reject clips that would poison a shard: empty, shorter than one window, all-zero, wrong length."""
    if wav.size == 0:
        raise SkipItem("empty", "no samples")
    if wav.size < fe.win_length or wav.size < min_seconds * fe.sample_rate:
        raise SkipItem("too_short", f"{wav.size / fe.sample_rate:.3f} s is shorter than "
                       f"{max(fe.win_length / fe.sample_rate, min_seconds):.3f} s")
    if not np.any(wav):
        raise SkipItem("silent", "all samples are zero")
    if expected_seconds is not None and abs(wav.size / fe.sample_rate - expected_seconds) > tolerance:
        raise SkipItem("bad_duration", f"decoded {wav.size / fe.sample_rate:.2f} s, expected {expected_seconds:.2f} s")


def segments(n: int, sample_rate: int, seconds: float) -> list[tuple[int, int]]:
    """``[(start, stop)]`` sample ranges cutting ``n`` samples into clips of ``seconds``.

    ``floor(duration / seconds)`` full clips; a remainder of at least half a clip is a clip of its
    own, a shorter one extends the last clip, so no audio is lost and every clip lasts between
    ``seconds / 2`` and ``1.5 seconds``.  A recording shorter than 1.5 clips stays whole.
    """
    size = int(round(seconds * sample_rate))
    if seconds <= 0 or n < 1.5 * size:
        return [(0, n)]
    bounds = list(range(0, n - size + 1, size))
    if n - (bounds[-1] + size) < size / 2:
        return [(a, a + size) for a in bounds[:-1]] + [(bounds[-1], n)]
    return [(a, a + size) for a in bounds] + [(bounds[-1] + size, n)]


def segment_key(key: str, start_ms: int) -> str:
    """Key of the clip of a cut recording starting at ``start_ms``: ``<key>_<start ms, 10 digits>``, which sorts
    right after ``key``.  When that is longer than a shard allows, ``key`` is shortened first (its start and
    a hash of all of it: ``shards.format.fit_key``), so the clips of one recording still sort together."""
    suffix = f"_{start_ms:010d}"
    return fit_key(key, max_len=MAX_KEY_LEN - len(suffix)) + suffix


@dataclass
class ShardTask:
    index: int
    name: str
    split: str
    items: list[Item]


def plan(items: list[Item], dataset: str, per_shard: int | None, max_bytes: float | None = None,
         size_of: Callable[[Item], float] | None = None) -> list[ShardTask]:
    """Deterministic shard plan: per split, items sorted by key, cut into groups of at most ``per_shard``
    items and, with ``max_bytes``, at most that many estimated bytes (``size_of``; at least one item)."""
    by_split: dict[str, list[Item]] = {}
    seen: set[str] = set()
    for it in items:
        check_name(it.split, "split name")
        if it.key in seen:
            raise ValueError(f"duplicate item key {it.key!r}")
        seen.add(it.key)
        by_split.setdefault(it.split, []).append(it)
    tasks = []
    for split in sorted(by_split):
        its = sorted(by_split[split], key=lambda x: x.key)
        cur: list[Item] = []
        size = 0.0
        for it in its:
            b = size_of(it) if max_bytes is not None and size_of is not None else 0.0
            if cur and ((per_shard is not None and len(cur) >= per_shard)
                        or (max_bytes is not None and size + b > max_bytes)):
                tasks.append(ShardTask(len(tasks), "", split, cur))
                cur, size = [], 0.0
            cur.append(it)
            size += b
        if cur:
            tasks.append(ShardTask(len(tasks), "", split, cur))
    first: dict[str, int] = {}
    for t in tasks:  # number the shards of each split from 0
        t.index -= first.setdefault(t.split, t.index)
        t.name = shard_name(dataset, t.split, t.index)
    return tasks


def _record_path(out: str, split: str, name: str) -> str:
    return os.path.join(out, split, PARTS_DIR, name + ".json")


def is_finished(out: str, task: ShardTask, frontend_hash: str, retry_transient: bool) -> bool:
    rec_p = _record_path(out, task.split, task.name)
    tar_p = os.path.join(out, task.split, task.name)
    if not (os.path.exists(rec_p) and os.path.exists(tar_p)):
        return False
    try:
        rec = load_json_bounded(rec_p, MAX_RECORD_BYTES, "shard record")
    except (OSError, ValueError):
        return False
    if not isinstance(rec, dict):
        return False
    if rec.get("frontend_hash") != frontend_hash or os.path.getsize(tar_p) != rec.get("bytes"):
        return False
    if sorted(rec.get("keys", []) + [f["key"] for f in rec.get("failures", [])]) != sorted(i.key for i in task.items):
        return False
    if retry_transient and any(not f.get("permanent", True) for f in rec.get("failures", [])):
        return False
    return True


def _meta(item: Item, dataset: str, seconds: float) -> dict[str, Any]:
    start = float(item.start) if item.start is not None else 0.0
    return {
        "dataset": dataset, "split": item.split, "source_id": redact_url(item.source_id), "origin": redact_url(item.origin),
        "start": start, "end": start + seconds, "duration": seconds, "labels": list(item.labels), **item.extra,
    }


_DERIVED = ("key", "n_mels", "frames", "codec", "mel_q")


class _PreviousShard:
    """The samples of an earlier version of a shard that is being redone, read in key order.

    Used when a source sets ``reuse_samples = True`` (network sources: a shard is redone to retry
    its transient failures, and the clips it already holds need not be fetched again).  Only a
    shard with a matching frontend hash and codec is used; a sample is reused only when its
    metadata still matches the item (labels, origin, ...).
    """

    def __init__(self, out: str, task: ShardTask, frontend_hash: str, codec: str):
        self._it = None
        self._cur: tuple[str, dict] | None = None
        rec_p = _record_path(out, task.split, task.name)
        tar_p = os.path.join(out, task.split, task.name)
        try:
            rec = load_json_bounded(rec_p, MAX_RECORD_BYTES, "shard record")
            if not isinstance(rec, dict) or (rec.get("frontend_hash") != frontend_hash or rec.get("codec") != codec
                    or os.path.getsize(tar_p) != rec.get("bytes") or not rec.get("keys")):
                return
        except (OSError, ValueError):
            return
        self._it = iter_tar_samples(tar_p)
        self._advance()

    def _advance(self) -> None:
        try:
            self._cur = next(self._it) if self._it is not None else None
        except StopIteration:
            self._cur = None
        except (OSError, ValueError) as e:
            log.warning("previous shard unreadable, refetching its clips: %s", e)
            self._cur, self._it = None, None

    def close(self) -> None:
        if self._it is not None:
            self._it.close()  # closes the old tar before the new one replaces it
        self._it, self._cur = None, None

    def take(self, item: Item, dataset: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        while self._cur is not None and self._cur[0] < item.key:
            self._advance()
        if self._cur is None or self._cur[0] != item.key:
            return None
        key, members = self._cur
        self._advance()
        try:
            mel, meta = decode_members(key, members)
        except ValueError:
            return None
        meta = {k: v for k, v in meta.items() if k not in _DERIVED}
        fresh = _meta(item, dataset, float(meta.get("duration") or 0.0))
        if any(meta.get(k) != v for k, v in fresh.items() if k not in ("end", "duration")):
            return None
        return mel, meta


def _batch_loader(source: Source) -> Callable[[list[Item], int], list] | None:
    """``source.load_many`` when it can stand in for ``source.load``.

    A subclass that overrides ``load`` but not ``load_many`` (a wrapper, a test) keeps its own
    per-item ``load``.
    """
    fn = getattr(source, "load_many", None)
    if fn is None:
        return None
    mro = type(source).__mro__
    owner_many = next((k for k in mro if "load_many" in vars(k)), None)
    owner_load = next((k for k in mro if "load" in vars(k)), None)
    if owner_many is not None and owner_load is not None and not issubclass(owner_many, owner_load):
        return None
    return fn


def _outcomes(source: Source, it: Item, got: Any, cfg: IngestConfig, fe: FrontendConfig) -> list:
    """Decode + check + log-mel + encode one item: a list of ``EncodedSample`` (one, or one per cut
    clip) and failure dicts.  ``got`` is the audio from ``load_many``, its exception, or None (load)."""
    try:
        if isinstance(got, BaseException):
            raise got
        wav = source.load(it, fe.sample_rate) if got is None else got
        expected = (it.end - it.start) if (it.start is not None and it.end is not None) else None
        check_clip(wav, fe, cfg.min_seconds, expected)
        cuts = segments(wav.size, fe.sample_rate, cfg.segment_seconds)
        if len(cuts) == 1:
            return [encode_sample(it.key, logmel(wav, fe), _meta(it, source.dataset, wav.size / fe.sample_rate),
                                  cfg.codec, cfg.level)]
        return _segment_outcomes(it, wav, cuts, source.dataset, fe, cfg)
    except SkipItem as e:
        return [{"key": it.key, "source_id": it.source_id, "origin": it.origin, "reason_class": e.reason,
                 "reason": str(e), "permanent": e.permanent, "attempts": e.attempts}]
    except DecodeError as e:
        rc = e.reason_class
        why = str(e) if rc == "no_audio_stream" else f"{rc}: {e}"
        return [{"key": it.key, "source_id": it.source_id, "origin": it.origin, "reason_class": rc,
                 "reason": why, "permanent": True, "attempts": 1}]
    except InvalidKey as e:  # a source made a key no shard can hold: this item only, never the run
        return [{"key": it.key, "source_id": it.source_id, "origin": it.origin, "reason_class": "bad_key",
                 "reason": f"bad_key: {e}", "permanent": True, "attempts": 1}]


def decode_items(source: Source, items: list[Item], cfg: IngestConfig, fe: FrontendConfig,
                 on_item: Callable[[], None] | None = None) -> list[list]:
    """:func:`_outcomes` of each item, in order (``on_item()`` after each: the bar moves per clip); a batched
    loader decodes them together (one ffmpeg process for the folder source), else each alone (``source.load``)."""
    load_many = _batch_loader(source) if cfg.decode_batch > 1 else None
    got: list = [None] * len(items)
    if load_many is not None:
        got = list(load_many(items, fe.sample_rate))
        if len(got) != len(items):
            raise RuntimeError(f"{type(source).__name__}.load_many returned {len(got)} results for {len(items)} items")
    out = []
    for it, g in zip(items, got):
        out.append(_outcomes(source, it, g, cfg, fe))
        if on_item is not None:
            on_item()
    return out


@dataclass
class _Group:
    """Up to ``decode_batch`` consecutive items of one shard: the samples reused from the shard's previous
    version (``olds``, None where the item is decoded) and the pending decode of the others."""

    task: ShardTask
    items: list[Item]
    olds: list
    result: Any  # AsyncResult, or a callable returning decode_items(...) (one process)
    last: bool  # the shard's last group


def _groups(source: Source, tasks: list[ShardTask], cfg: IngestConfig, fe: FrontendConfig,
            submit: Callable[[list[Item]], Any]) -> Iterator[_Group]:
    """The groups of every shard in plan order; their decodes are submitted as they are generated."""
    reuse = getattr(source, "reuse_samples", False)
    for task in tasks:
        prev = _PreviousShard(cfg.out, task, fe.hash(), cfg.codec) if reuse else None
        try:
            n = len(task.items)
            for g in range(0, n, cfg.decode_batch):
                items = task.items[g:g + cfg.decode_batch]
                olds = [prev.take(it, source.dataset) if prev is not None else None for it in items]
                need = [it for it, old in zip(items, olds) if old is None]
                last = g + cfg.decode_batch >= n
                if last and prev is not None:
                    prev.close()  # the old tar is closed before the new one replaces it
                yield _Group(task, items, olds, submit(need) if need else None, last)
        finally:
            if prev is not None:
                prev.close()


def _write_groups(groups: Iterator[_Group], cfg: IngestConfig, commons: dict[str, dict], window: int,
                  done: Callable[[dict], None], progress: Callable[[int, int], None],
                  workers: dict[str, dict] | None = None, wait: Callable[[Any], Any] = lambda r: r.get()) -> None:
    """Write the groups' samples in plan (= key) order, one shard at a time, keeping up to ``window``
    groups decoding ahead; ``done(record)`` after each shard, ``progress(items, reused)`` after each group
    (``reused``: taken from the shard's previous version); ``workers`` collects the items and CPU seconds
    of each decoding process; ``wait(async_result)`` awaits a worker's group."""
    workers = {} if workers is None else workers
    pending: deque[_Group] = deque()
    w: ShardWriter | None = None

    def consume(grp: _Group) -> None:
        nonlocal w
        if w is None:
            w = ShardWriter(os.path.join(cfg.out, grp.task.split), grp.task.name, codec=cfg.codec, level=cfg.level,
                            common=commons[grp.task.name])
        got = None if grp.result is None else (grp.result() if callable(grp.result) else wait(grp.result))
        if got is not None:
            pid, cpu, got = got
            st = workers.setdefault(str(pid), {"items": 0, "cpu_s": 0.0})
            st["items"] += len(got)
            st["cpu_s"] += cpu
        res = deque(got or ())
        for it, old in zip(grp.items, grp.olds):
            if old is not None:
                w.add(it.key, old[0], old[1])
                continue
            for out in res.popleft():
                if isinstance(out, EncodedSample):
                    w.add_encoded(out)
                else:
                    w.fail(out)
        progress(len(grp.items), sum(old is not None for old in grp.olds))
        if grp.last:
            rec, w = w.close(), None
            done({"name": rec["name"], "samples": rec["samples"], "failed": len(rec["failures"]),
                  "seconds": rec["seconds"]})

    try:
        for grp in groups:
            pending.append(grp)
            while len(pending) > window:
                consume(pending.popleft())
        while pending:
            consume(pending.popleft())
    except BaseException:
        if w is not None:
            w.abort()
        raise


def write_shard(source: Source, task: ShardTask, cfg: IngestConfig, fe: FrontendConfig,
                common: dict[str, Any]) -> dict[str, Any]:
    """Decode every item of one planned shard in this process and write it atomically; its record."""
    recs: list[dict] = []
    groups = _groups(source, [task], cfg, fe, lambda items: (lambda: _timed_decode(source, items, cfg, fe)))
    _write_groups(groups, cfg, {task.name: common}, 0, recs.append, lambda n, reused: None)
    return load_json_bounded(_record_path(cfg.out, task.split, task.name), MAX_RECORD_BYTES, "shard record")


def _segment_outcomes(it: Item, wav: np.ndarray, cuts: list[tuple[int, int]], dataset: str,
                      fe: FrontendConfig, cfg: IngestConfig) -> list:
    """The clips of one cut recording; an all-zero clip is recorded as a failure of its own."""
    base = float(it.start) if it.start is not None else 0.0
    out: list = []
    for a, b in cuts:
        start_ms = int(round(a * 1000 / fe.sample_rate))
        key = segment_key(it.key, start_ms)
        piece = wav[a:b]
        if not np.any(piece):
            out.append({"key": key, "source_id": it.source_id, "origin": it.origin, "reason_class": "silent",
                        "reason": "silent: all samples of this segment are zero", "permanent": True, "attempts": 1})
            continue
        meta = _meta(it, dataset, piece.size / fe.sample_rate)
        meta["start"] = base + a / fe.sample_rate
        meta["end"] = meta["start"] + meta["duration"]
        meta["recording"] = it.key  # clips cut from one recording share it
        out.append(encode_sample(key, logmel(piece, fe), meta, cfg.codec, cfg.level))
    return out


# The worker processes' source and settings (set once per process by the pool initializer).
_WORKER: tuple | None = None


def _worker_init(source: Source | None = None, cfg: IngestConfig | None = None,
                 fe: FrontendConfig | None = None, count: Any = None) -> None:
    global _WORKER
    import torch

    torch.set_num_threads(threads_per_worker(cfg) if cfg is not None else 1)
    _WORKER = (source, cfg, fe, counter(count))  # count: clips decoded, for the bar (ingest/progress.py)


def _pool_context():
    """``forkserver`` where available: one server process imports torch once (``ingest.engine``) and forks
    the workers, instead of every spawned worker importing it again (seconds each); else ``spawn``."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["ingest.engine"])
        return ctx
    return mp.get_context("spawn")


def _timed_decode(source: Source, items: list[Item], cfg: IngestConfig, fe: FrontendConfig,
                  on_item: Callable[[], None] | None = None) -> tuple[int, float, list]:
    """``(pid, CPU seconds, decode_items(...))``: the decoding process and what the group cost it."""
    t = time.process_time()
    out = decode_items(source, items, cfg, fe, on_item)
    return os.getpid(), time.process_time() - t, out


def _decode_in_worker(items: list[Item]) -> tuple[int, float, list]:
    source, cfg, fe, on_item = _WORKER
    return _timed_decode(source, items, cfg, fe, on_item)


def run_ingest(source: Source, cfg: IngestConfig, command: list[str] | None = None,
               extra_manifest: dict[str, Any] | Callable[[str], dict[str, Any] | None] | None = None,
               on_done: Callable[[dict], None] | None = None,
               on_items: Callable[[int], None] | None = None, frontend: FrontendConfig | None = None) -> dict[str, Any]:
    """Ingest ``source`` into ``cfg.out/<split>/``; returns a summary dict (also logged).

    ``extra_manifest`` is merged into each split's manifest; a callable is called with the split
    name after the shards are written (so it can report on them).  ``frontend`` replaces ``cfg.preset``.
    """
    fe = frontend if frontend is not None else get_preset(cfg.preset)
    check_config(cfg)
    threads = threads_per_worker(cfg)
    items = source.items()
    if cfg.limit is not None:
        items = sorted(items, key=lambda x: x.key)[: cfg.limit]
    per_shard, max_bytes = shard_limits(cfg.shard_size)
    tasks = plan(items, source.dataset, per_shard, max_bytes, lambda it: estimate_bytes(source, it, fe))
    mine = [t for t in tasks if t.index % cfg.num_jobs == cfg.job_index]
    common = {"dataset": source.dataset, "frontend": fe.to_dict(), "frontend_hash": fe.hash()}
    todo = [] if cfg.merge else [t for t in mine if not is_finished(cfg.out, t, fe.hash(), cfg.retry_transient)]
    summary = {"planned_shards": len(tasks), "job_shards": len(mine), "skipped_finished": len(mine) - len(todo),
               "written_shards": 0, "ingested": 0, "failed": 0, "hours": 0.0}
    bar = ClipProgress(sum(len(t.items) for t in todo), f"ingest {source.dataset}", cfg.progress and bool(todo))

    def done(r: dict) -> None:
        summary["written_shards"] += 1
        summary["ingested"] += r["samples"]
        summary["failed"] += r["failed"]
        summary["hours"] += r["seconds"] / 3600
        if on_done:
            on_done(r)

    workers: dict[str, dict] = {}
    commons = {t.name: {**common, "split": t.split, **getattr(source, "shard_common", lambda s: {})(t.split)}
               for t in todo}
    def progress(n: int, reused: int) -> None:  # items of a group written (done or failed); decoded ones are shown
        bar.reused(reused)
        if on_items:
            on_items(n)

    if cfg.workers <= 1 or not todo:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(threads)  # this process decodes; the caller's setting comes back afterwards
        try:
            groups = _groups(source, todo, cfg, fe, lambda items: (lambda: _timed_decode(source, items, cfg, fe, bar.item)))
            _write_groups(groups, cfg, commons, 0, done, progress, workers)
        finally:
            torch.set_num_threads(before)
    else:
        # Workers decode groups of items, whatever shard they belong to; this process writes them in key
        # order, so every worker stays busy on a one-shard folder and the bytes do not depend on --workers.
        ctx = _pool_context()
        with ctx.Pool(cfg.workers, initializer=_worker_init, initargs=(source, cfg, fe, bar.share(ctx))) as pool:
            groups = _groups(source, todo, cfg, fe, lambda items: pool.apply_async(_decode_in_worker, (items,)))
            _write_groups(groups, cfg, commons, 4 * cfg.workers, done, progress, workers, bar.wait)
    bar.close()
    manifests = {}
    if cfg.num_jobs == 1 or cfg.merge:
        for split in sorted({t.split for t in tasks}):
            extra = extra_manifest(split) if callable(extra_manifest) else extra_manifest
            manifests[split] = build_manifest(os.path.join(cfg.out, split), command=command or sys.argv,
                                              extra=extra)
    if cfg.merge:
        missing = [t.name for t in tasks if not is_finished(cfg.out, t, fe.hash(), retry_transient=False)]
        summary["missing_shards"] = missing
        if missing:
            log.warning("--merge: %d planned shards are not written yet (%s ...); the manifests list the others",
                        len(missing), ", ".join(missing[:3]))
    summary["workers"] = workers  # per decoding process: items and CPU seconds (every worker busy?)
    summary["threads_per_worker"] = threads
    summary["manifests"] = {s: m["totals"] for s, m in manifests.items()}
    summary["failures_by_reason"] = {s: m["failures"]["by_reason"] for s, m in manifests.items()}
    return summary
