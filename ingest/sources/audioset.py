"""``python -m ingest audioset --segments balanced_train_segments.csv [--labels class_labels_indices.csv]``.

Reads the official segment CSVs (three ``#`` comment lines, then ``YTID, start_seconds,
end_seconds, "label,label"`` separated by comma + space) and downloads each segment with yt-dlp
(:mod:`ingest.ytdl`), one range request per clip.  Keys are ``<YTID>_<start ms>`` (IDs may start
with ``-`` and contain ``_``: split keys from the right only, see :func:`split_key`).  Labels are
stored as MIDs; display names from ``class_labels_indices.csv`` go into the vocabulary.

Rows that cannot be a segment (IDs mangled into ``#NAME?`` by spreadsheets, bad times, no labels,
duplicates) are rejected with a counted reason.  Failures are classified permanent / transient
(:func:`ingest.ytdl.classify`); transient ones are retried with exponential backoff and jitter up to
``--retries`` times and, if still failing, recorded as transient so a later run retries them.
Every outcome goes to the per-clip ledger (:mod:`ingest.ledger`) with the date it was checked:
reruns skip clips that are settled (permanent failures are not requested again; clips already in a
shard are copied from it when a shard is redone), and ``OUT/<split>/missing.csv`` lists what is
missing so results on this copy of AudioSet can be compared with others.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import os
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shards.atomic import atomic_write_bytes
from shards.bounded import MAX_TABLE_BYTES, bounded_lines, open_bounded
from shards.cli_types import bounded_float, bounded_int
from shards.manifest import read_parts

from .. import ledger as ledger_mod
from ..engine import Item, SkipItem
from ..ratelimit import SharedRateLimiter, parse_rate
from ..ytdl import DEFAULT_URL_TEMPLATE, YTID_RE, ClipFailure, ClipFetcher, FetchConfig, check_template
from . import SOURCES, SourceSpec

log = logging.getLogger("melstream.ingest.audioset")

DATASET = "audioset"
_LABEL_RE = re.compile(r"^/[a-z]/[A-Za-z0-9_]+$")
_TIME_RE = re.compile(r"^\d+(?:\.\d*)?$")
DEFAULT_RATE = "600/h"
MAX_SEGMENT_SECONDS = 60.0  # a longer [start, end] row is refused as bad_time (AudioSet segments are 10 s)


def segment_key(ytid: str, start: float) -> str:
    """``<YTID>_<start in integer milliseconds>``."""
    return f"{ytid}_{int(round(float(start) * 1000))}"


def split_key(key: str) -> tuple[str, int]:
    """Inverse of :func:`segment_key`; splits at the *last* underscore (IDs contain ``_``)."""
    ytid, _, ms = key.rpartition("_")
    if not YTID_RE.match(ytid) or not ms.isdigit():
        raise ValueError(f"not an AudioSet key: {key!r}")
    return ytid, int(ms)


def split_from_filename(path: str) -> str:
    """``balanced_train_segments.csv`` -> ``balanced_train``; ``eval_segments.csv`` -> ``eval``."""
    stem = os.path.basename(path)
    stem = re.sub(r"\.csv$", "", stem, flags=re.I)
    stem = re.sub(r"_segments$", "", stem)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")
    return stem or "train"


@dataclass(slots=True)
class Segment:
    ytid: str
    start: float
    end: float
    labels: list[str]
    line: int


@dataclass
class ParsedSegments:
    segments: list[Segment] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    declared: int | None = None
    rows: int = 0

    def reject(self, reason: str, where: str) -> None:
        self.rejected[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 5:
            ex.append(where)


def parse_segments(path: str) -> ParsedSegments:
    """Parse an AudioSet segments CSV; rows that cannot be segments are counted, not fatal."""
    out = ParsedSegments()
    with open_bounded(path, MAX_TABLE_BYTES, "segments CSV", newline="", encoding="utf-8-sig") as f:
        for n, row in enumerate(csv.reader(bounded_lines(f, "segments CSV", name=path), skipinitialspace=True), 1):
            if not row or all(not c.strip() for c in row):
                continue
            first = row[0].strip()
            if first.startswith("#"):
                # Comment lines ("# Segments csv created ...", "# num_ytids=...", "# YTID, start_seconds, ...")
                # versus a data row whose ID a spreadsheet turned into "#NAME?": the latter has times.
                if len(row) >= 3 and _TIME_RE.match(row[1].strip()) and _TIME_RE.match(row[2].strip()):
                    out.rows += 1
                    out.reject("bad_ytid", f"line {n}: {first!r}")
                else:
                    m = re.search(r"num_segs=(\d+)", ",".join(row))
                    if m:
                        out.declared = int(m.group(1))
                continue
            out.rows += 1
            if len(row) < 4:
                out.reject("bad_row", f"line {n}: {len(row)} fields")
                continue
            ytid = first
            if not YTID_RE.match(ytid):
                out.reject("bad_ytid", f"line {n}: {ytid[:40]!r}")
                continue
            try:
                start, end = float(row[1]), float(row[2])
            except ValueError:
                out.reject("bad_time", f"line {n}: {row[1][:20]!r}, {row[2][:20]!r}")
                continue
            if not (np.isfinite(start) and np.isfinite(end)) or start < 0 or end <= start:
                out.reject("bad_time", f"line {n}: [{start}, {end}]")
                continue
            if end - start > MAX_SEGMENT_SECONDS:  # AudioSet segments are <= 10 s; 1e12 would fetch forever
                out.reject("bad_time", f"line {n}: segment of {end - start:g} s is longer than {MAX_SEGMENT_SECONDS} s")
                continue
            # labels: one quoted field "a,b"; an unquoted copy spreads them over several fields
            labels = [lab.strip() for lab in ",".join(row[3:]).split(",") if lab.strip()]
            labels = list(dict.fromkeys(sys.intern(lab) for lab in labels))  # 527 distinct MIDs, millions of rows
            if not labels or not all(_LABEL_RE.match(lab) for lab in labels):
                out.reject("bad_labels", f"line {n}: {','.join(row[3:])[:60]!r}")
                continue
            out.segments.append(Segment(ytid, start, end, labels, n))
    return out


def read_class_labels(path: str) -> dict[str, str]:
    """``class_labels_indices.csv`` (``index,mid,display_name``, names quoted) -> {mid: display name}."""
    names: dict[str, str] = {}
    with open_bounded(path, MAX_TABLE_BYTES, "labels CSV", newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(bounded_lines(f, "labels CSV", name=path)))
    if not rows:
        raise ValueError(f"{path}: empty labels file")
    header = [c.strip().lower() for c in rows[0]]
    if header[:3] != ["index", "mid", "display_name"]:
        raise ValueError(f"{path}: expected header index,mid,display_name, got {rows[0]!r}")
    for n, row in enumerate(rows[1:], 2):
        if not row:
            continue
        if len(row) != 3 or not _LABEL_RE.match(row[1].strip()):
            raise ValueError(f"{path}:{n}: expected index,mid,\"display name\", got {row!r}")
        names[row[1].strip()] = row[2].strip()
    return names


@dataclass(slots=True)
class SegmentItem(Item):
    """An AudioSet item; ``prior`` is its settled ledger entry from an earlier run (if any)."""

    prior: dict[str, Any] | None = None


def _subset(items: list[SegmentItem], fraction: float, seed: int) -> list[SegmentItem]:
    """A deterministic ``fraction`` of the items (per split): smallest sha1(seed:key) first."""
    if fraction >= 1.0:
        return items
    by_split: dict[str, list[SegmentItem]] = {}
    for it in items:
        by_split.setdefault(it.split, []).append(it)
    out: list[SegmentItem] = []
    for split in sorted(by_split):
        its = sorted(by_split[split], key=lambda x: hashlib.sha1(f"{seed}:{x.key}".encode()).hexdigest())
        k = int(round(fraction * len(its)))
        out.extend(its[:max(1, k) if fraction > 0 else 0])
    return out


# per-process state of the worker (fetcher, ledger file, limiter), reused across shards
_STATE: dict[tuple, Any] = {}


@dataclass
class AudioSetSource:
    segments: list[tuple[str, str]]  # (csv path, split)
    out: str
    labels_csv: str | None = None
    url_template: str = DEFAULT_URL_TEMPLATE
    retries: int = 3
    backoff: float = 2.0
    max_backoff: float = 300.0
    rate_limit: str = DEFAULT_RATE
    sleep_interval: float = 0.0
    max_sleep_interval: float | None = None
    cookies: str | None = None
    proxy: str | None = None
    socket_timeout: float = 30.0
    fraction: float = 1.0
    seed: int = 0
    tmp_dir: str | None = None
    job_index: int = 0
    duration_tolerance: float = 0.5
    fallback: bool = True
    dataset: str = DATASET
    reuse_samples: bool = True  # engine: copy clips already in a shard that is redone

    def __post_init__(self) -> None:
        check_template(self.url_template)
        self._rate = parse_rate(self.rate_limit)
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"--fraction {self.fraction}: must be in (0, 1]")
        if self.retries < 0:
            raise ValueError("--retries must be >= 0")
        if self.cookies and not os.path.isfile(self.cookies):
            raise FileNotFoundError(f"--cookies {self.cookies!r} does not exist")
        self.display_names: dict[str, str] = read_class_labels(self.labels_csv) if self.labels_csv else {}
        self.parsed: dict[str, ParsedSegments] = {}
        self.planned: Counter = Counter()

    # -- paths -------------------------------------------------------------------------------
    @property
    def ledger_dir(self) -> str:
        return os.path.join(self.out, ".ledger")

    def _state(self):
        """This process's fetcher, ledger writer and rate limiter (created once per process)."""
        sk = (os.getpid(), self.out, self.url_template, self.cookies, self.proxy, self.socket_timeout,
              self.tmp_dir, self.job_index, self.rate_limit, self.sleep_interval, self.max_sleep_interval,
              self.duration_tolerance, self.fallback)
        st = _STATE.get(sk)
        if st is None:
            fetcher = ClipFetcher(FetchConfig(
                url_template=self.url_template, cookies=self.cookies, proxy=self.proxy,
                socket_timeout=self.socket_timeout, tmp_dir=self.tmp_dir or os.path.join(self.out, ".tmp"),
                cache_dir=os.path.join(self.out, ".cache", "yt-dlp"), duration_tolerance=self.duration_tolerance,
                fallback=self.fallback))
            limiter = SharedRateLimiter(os.path.join(self.out, ".ratelimit", f"job-{self.job_index}"), self._rate,
                                        self.sleep_interval, self.max_sleep_interval)
            st = _STATE[sk] = (fetcher, ledger_mod.LedgerWriter(self.ledger_dir), limiter)
        return st

    def __getstate__(self) -> dict:
        d = dict(self.__dict__)
        d["parsed"] = {}  # the workers need none of the parse results
        return d

    # -- Source protocol ---------------------------------------------------------------------
    def items(self) -> list[Item]:
        prior = ledger_mod.load(self.ledger_dir, ("permanent",)) if os.path.isdir(self.ledger_dir) else {}
        items: list[SegmentItem] = []
        seen: set[str] = set()
        unknown = Counter()
        for path, split in self.segments:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"segments CSV {path!r} does not exist")
            p = parse_segments(path)
            self.parsed[split] = p
            if p.declared is not None and p.declared != p.rows:
                log.warning("%s declares %d segments but has %d rows", path, p.declared, p.rows)
            for s in p.segments:
                key = segment_key(s.ytid, s.start)
                if key in seen:
                    p.reject("duplicate", f"line {s.line}: {key}")
                    continue
                seen.add(key)
                if self.display_names:
                    unknown.update(lab for lab in s.labels if lab not in self.display_names)
                pr = prior.get(key)
                items.append(SegmentItem(
                    key=key, source_id=s.ytid, origin=self.url_template.format(ytid=s.ytid), split=split,
                    labels=s.labels, start=s.start, end=s.end, extra={"ytid": s.ytid, "segment_end": s.end},
                    prior=pr))
            p.segments = []  # the items hold what is needed: do not keep a second copy of a 2M-row CSV
        if unknown:
            log.warning("%d labels not in %s, e.g. %s", sum(unknown.values()), self.labels_csv, sorted(unknown)[:3])
        items = _subset(items, self.fraction, self.seed)
        self.planned = Counter(it.split for it in items)
        for split, p in self.parsed.items():
            if p.rejected:
                log.warning("%s: rejected %d rows: %s", split, sum(p.rejected.values()), dict(p.rejected))
        return items

    def _skip_settled(self, item: SegmentItem) -> None:
        pr = item.prior
        if not pr:
            return
        try:
            attempts = int(pr.get("attempts", 1))
        except (TypeError, ValueError):
            attempts = 1
        raise SkipItem(str(pr.get("reason") or "unavailable"),
                       f"{pr.get('message', '')} (ledger: checked {pr.get('checked', '?')})",
                       permanent=True, attempts=attempts)

    def load(self, item: Item, sample_rate: int) -> np.ndarray:
        self._skip_settled(item)  # type: ignore[arg-type]
        fetcher, ledger, limiter = self._state()
        ytid, start, end = item.source_id, float(item.start or 0.0), float(item.end or 0.0)
        base = {"key": item.key, "id": ytid, "start": start, "end": end, "split": item.split}
        attempts = 0
        while True:
            attempts += 1
            try:
                limiter.acquire()
                wav, mode = fetcher.fetch(ytid, start, end, sample_rate)
            except ClipFailure as e:
                failure = e
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:  # a run never dies because of one video
                failure = ClipFailure("unknown", f"{type(e).__name__}: {e}"[:300], True)
            else:
                ledger.append({**base, "status": "ok", "attempts": attempts, "mode": mode,
                               "seconds": round(wav.size / sample_rate, 3)})
                return wav
            if failure.transient and attempts <= self.retries:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempts - 1)) * random.uniform(0.5, 1.5)
                if failure.reason in ("http_429", "bot_check"):
                    limiter.penalize(delay)  # everybody in this job slows down
                log.info("%s: %s (attempt %d/%d), retrying in %.1f s", item.key, failure, attempts,
                         self.retries + 1, delay)
                time.sleep(delay)
                continue
            status = "transient" if failure.transient else "permanent"
            ledger.append({**base, "status": status, "reason": failure.reason, "message": failure.message,
                           "attempts": attempts})
            raise SkipItem(failure.reason, failure.message, permanent=not failure.transient, attempts=attempts)

    def shard_common(self, split: str) -> dict[str, Any]:
        return {"display_names": dict(self.display_names)} if self.display_names else {}

    # -- reporting ---------------------------------------------------------------------------
    def report(self, split: str) -> dict[str, Any]:
        """Attempted / ingested / permanently unavailable (by reason) / transient / hours for one split."""
        d = os.path.join(self.out, split)
        parts = read_parts(d) if os.path.isdir(d) else []
        fails = [f for p in parts for f in p.get("failures", [])]
        perm = Counter(f.get("reason_class", "unknown") for f in fails if f.get("permanent", True))
        trans = Counter(f.get("reason_class", "unknown") for f in fails if not f.get("permanent", True))
        ingested = sum(int(p["samples"]) for p in parts)
        parsed = self.parsed.get(split)
        return {
            "csv_rows": parsed.rows if parsed else None,
            "csv_declared_segments": parsed.declared if parsed else None,
            "rejected_rows": dict(sorted(parsed.rejected.items())) if parsed else {},
            "planned": int(self.planned.get(split, 0)),
            "attempted": ingested + len(fails),
            "ingested": ingested,
            "permanently_unavailable": sum(perm.values()),
            "permanent_by_reason": dict(sorted(perm.items())),
            "transient_failures": sum(trans.values()),
            "transient_by_reason": dict(sorted(trans.items())),
            "hours": sum(float(rec["seconds"]) for rec in parts) / 3600.0,
            "fraction": self.fraction,
            "seed": self.seed,
            "url_template": self.url_template,
            "missing_list": "missing.csv",
            "ledger": "../ledger.jsonl",
        }

    def manifest_extra(self, split: str) -> dict[str, Any]:
        return {"audioset": self.report(split)}

    def finalize(self) -> dict[str, Any]:
        """Consolidate the ledger (``OUT/ledger.jsonl``) and write ``OUT/<split>/missing.csv``."""
        merged = ledger_mod.consolidate(self.ledger_dir, os.path.join(self.out, "ledger.jsonl")) \
            if os.path.isdir(self.ledger_dir) else {}
        reports = {}
        for split in sorted(self.planned):
            d = os.path.join(self.out, split)
            if not os.path.isdir(d):
                continue
            rows = []
            for p in read_parts(d):
                for f in p.get("failures", []):
                    try:
                        ytid, ms = split_key(f["key"])
                    except (KeyError, ValueError):
                        continue
                    e = merged.get(f["key"], {})
                    rows.append([ytid, f"{ms / 1000:.3f}", f"{float(e['end']):.3f}" if "end" in e else "",
                                 "permanent" if f.get("permanent", True) else "transient",
                                 f.get("reason_class", ""), e.get("checked", "")])
            rows.sort()
            import io
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["YTID", "start_seconds", "end_seconds", "status", "reason", "checked"])
            w.writerows(rows)
            atomic_write_bytes(os.path.join(d, "missing.csv"), buf.getvalue().encode())
            reports[split] = {k: v for k, v in self.report(split).items()
                              if k in ("rejected_rows", "planned", "attempted", "ingested", "permanently_unavailable",
                                       "permanent_by_reason", "transient_failures", "hours")}
        tmp = os.path.join(self.out, ".tmp")
        if os.path.isdir(tmp):
            for name in os.listdir(tmp):
                try:
                    os.rmdir(os.path.join(tmp, name))  # only empty per-process dirs go
                except OSError:
                    pass
        for line in _summary_lines(reports):
            log.info(line)
        return {"audioset": reports}


def _summary_lines(reports: dict[str, dict]) -> list[str]:
    out = []
    for split, r in reports.items():
        out.append(f"audioset {split}: attempted {r['attempted']}, ingested {r['ingested']}, "
                   f"permanently unavailable {r['permanently_unavailable']} {r['permanent_by_reason']}, "
                   f"transient {r['transient_failures']}, {r['hours']:.2f} h"
                   + (f", rejected CSV rows {r['rejected_rows']}" if r["rejected_rows"] else ""))
    return out


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--segments", action="append", required=True, metavar="CSV",
                   help="AudioSet segments CSV (repeatable: balanced_train / unbalanced_train / eval)")
    p.add_argument("--split", action="append", default=None,
                   help="split name for each --segments (default from the file name, e.g. balanced_train)")
    p.add_argument("--labels", default=None, metavar="CSV", help="class_labels_indices.csv (display names)")
    p.add_argument("--url-template", default=DEFAULT_URL_TEMPLATE,
                   help="URL of a video from its ID, e.g. http://mirror/{ytid}.m4a (default the YouTube watch URL)")
    p.add_argument("--rate-limit", default=DEFAULT_RATE,
                   help=f"requests per job, shared by all its workers: N/h, N/m, N/s; 0 = none (default {DEFAULT_RATE})")
    p.add_argument("--sleep-interval", type=bounded_float(0.0, 3600.0), default=0.0, help="extra random sleep per request (seconds, min)")
    p.add_argument("--max-sleep-interval", type=bounded_float(0.0, 3600.0), default=None, help="upper bound of the random sleep")
    p.add_argument("--retries", type=bounded_int(0, 100), default=3, help="retries of a transient failure (default 3)")
    p.add_argument("--backoff", type=bounded_float(0.0, 3600.0), default=2.0, help="first retry delay in seconds, doubled each time")
    p.add_argument("--max-backoff", type=bounded_float(0.0, 86400.0), default=300.0, help="cap of the retry delay (seconds)")
    p.add_argument("--cookies", default=None, metavar="FILE", help="Netscape cookies file for yt-dlp")
    p.add_argument("--proxy", default=None, metavar="URL", help="proxy for yt-dlp and ffmpeg")
    p.add_argument("--socket-timeout", type=bounded_float(0.1, 3600.0), default=30.0, help="network timeout in seconds")
    p.add_argument("--fraction", type=bounded_float(1e-6, 1.0), default=1.0, help="deterministic subset of each split (e.g. 0.1)")
    p.add_argument("--seed", type=bounded_int(0, 2**32 - 1), default=0, help="seed of the --fraction subset")
    p.add_argument("--no-full-fallback", action="store_true",
                   help="never fall back to downloading the whole file when the range fetch fails")
    p.add_argument("--tmp-dir", default=None, help="temp downloads (default OUT/.tmp; emptied after every clip)")


@SOURCES.register("audioset")
class AudioSetSpec(SourceSpec):
    help = "AudioSet segments CSVs, downloaded with yt-dlp (ledger, retries, rate limit)"
    add_args = staticmethod(add_args)

    @staticmethod
    def run(a: argparse.Namespace) -> AudioSetSource:
        splits = a.split or []
        if splits and len(splits) != len(a.segments):
            raise ValueError("give one --split per --segments (or none)")
        pairs = [(path, splits[i] if splits else split_from_filename(path)) for i, path in enumerate(a.segments)]
        return AudioSetSource(
            segments=pairs, out=a.out, labels_csv=a.labels, url_template=a.url_template, retries=a.retries,
            backoff=a.backoff, max_backoff=a.max_backoff, rate_limit=a.rate_limit, sleep_interval=a.sleep_interval,
            max_sleep_interval=a.max_sleep_interval, cookies=a.cookies, proxy=a.proxy,
            socket_timeout=a.socket_timeout, fraction=a.fraction, seed=a.seed, tmp_dir=a.tmp_dir, job_index=a.job_index,
            fallback=not a.no_full_fallback)
