"""``python -m ingest wds 'SRC/{000000..000123}.tar' --out DIR``: WebDataset tars of audio, local or remote.

Shards are local paths, brace patterns, globs, or ``http(s)://`` / ``s3://`` / ``gs://`` URLs read through
:mod:`shards.remote` (the pipeline's reader); ``pipe:`` commands only with ``--allow-pipe``.  Members are
grouped into samples as WebDataset does (consecutive members sharing the name up to the first dot of the
base name).  The audio member is the first present of ``--audio-ext`` (flac, wav, mp3, ogg, opus, m4a),
the label member the first present of ``--label-ext`` (json: the ``--label-field`` value; cls: class
indices; txt: comma-separated labels); ``--label-ext none`` ingests without labels.  Labels that are
class indices or display names become AudioSet MIDs through ``--labels class_labels_indices.csv``, so
they share the vocabulary of the ``audioset`` source.

Two passes: every tar is *listed* first (headers and label members only: seeks on a local file; a remote
tar is streamed once and its listing cached in ``OUT/.wds-index/`` so a rerun does not stream it again),
then the engine plans the output shards and its workers read the audio members by byte range (one
request per run of neighbouring members) and decode them in memory (:func:`ingest.decode.decode_bytes_many`).
A truncated tar keeps the samples before the cut; the member that was cut, an undecodable member, a
missing label, an oversized member (``--max-member-bytes``) or an unsafe member name (absolute, ``..``)
is a failure of its own in ``failures.jsonl``.  ``OUT/<split>/ledger.jsonl`` lists every planned clip:
its tar (credentials redacted), member, byte range and outcome.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import logging
import os
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any, Callable

import numpy as np

from shards.atomic import atomic_write_json, atomic_write_lines
from shards.cli_types import bounded_int, parse_size
from shards.manifest import read_parts
from shards.redact import redact_url
from shards.remote import UrlError, open_stream, read_range, scheme_of

from ..decode import DecodeError, decode_bytes_many
from ..engine import Item, SkipItem
from ..tarindex import TarEntry, TarTruncated, iter_tar, output_key, split_name, unsafe_name  # noqa: F401  (re-exported)
from . import SOURCES, SourceSpec

log = logging.getLogger("melstream.ingest.wds")

AUDIO_EXTS = ("flac", "wav", "mp3", "ogg", "opus", "m4a")
LABEL_EXTS = ("json", "cls", "txt")
LABEL_FIELDS = ("labels", "label", "mids", "tags", "classes")  # --label-field auto: the first present
DEFAULT_MAX_MEMBER = 64 << 20  # bytes; a 10-s clip is 0.2-3 MB, 64 MiB is minutes of 48-kHz FLAC
MAX_LABEL_BYTES = 1 << 20
MAX_INPUTS = 1_000_000
MAX_LABELS = 1000
COALESCE_GAP = 1 << 20  # members closer than this are read with one range request
_MID_RE = re.compile(r"^/[a-z]/[A-Za-z0-9_]+$")
_INDEX_VERSION = 1


# -- inputs ----------------------------------------------------------------------------------------
def expand_sources(patterns: list[str], allow_pipe: bool = False, suffix: str = "") -> list[str]:
    """Brace patterns and globs -> the sorted, de-duplicated list of inputs (local paths or URLs).

    A local glob or a remote one (fsspec: s3://, gs://) must match something; http(s) URLs cannot be
    globbed (list them with braces).  ``pipe:`` needs ``allow_pipe``.  At most ``MAX_INPUTS`` inputs."""
    from braceexpand import braceexpand

    out: list[str] = []
    for pat in patterns:
        if scheme_of(pat) == "pipe":
            if not allow_pipe:
                raise ValueError(f"{pat[:60]}: pipe: sources run shell commands; add --allow-pipe to use them")
            out.append(pat)
            continue
        for n, one in enumerate(braceexpand(pat)):
            if n >= MAX_INPUTS:
                raise ValueError(f"{redact_url(pat)}: expands to more than {MAX_INPUTS} inputs")
            out.extend(_glob_one(one))
    seen: set[str] = set()
    uniq = [x for x in out if not (x in seen or seen.add(x))]  # type: ignore[func-returns-value]
    if not uniq:
        raise FileNotFoundError(f"no {suffix or 'input'} files match {' '.join(redact_url(p) for p in patterns)}")
    if len(uniq) > MAX_INPUTS:
        raise ValueError(f"{len(uniq)} inputs: at most {MAX_INPUTS}")
    return uniq


def _glob_one(path: str) -> list[str]:
    scheme = scheme_of(path)
    from urllib.parse import urlsplit

    has_glob = any(c in (path if scheme in ("", "file") else urlsplit(path).path) for c in "*?[")
    if scheme in ("", "file"):
        local = path[len("file://"):] if scheme == "file" else path
        if not has_glob:
            if not os.path.isfile(local):
                raise FileNotFoundError(f"{path}: no such file")
            return [local]
        found = sorted(p for p in glob.glob(local) if os.path.isfile(p))
        if not found:
            raise FileNotFoundError(f"{path}: matches no file")
        return found
    if not has_glob:
        return [path]
    if scheme in ("http", "https"):
        raise ValueError(f"{redact_url(path)}: http(s) URLs cannot be globbed; list the shards with braces, "
                         f"e.g. 'https://host/dir/{{000000..000099}}.tar'")
    import fsspec

    try:
        fs, p = fsspec.core.url_to_fs(path)
        found = sorted(fs.glob(p))
    except (ImportError, ValueError, OSError) as e:
        raise UrlError(f"{redact_url(path)}: cannot list: {redact_url(str(e))}") from None
    if not found:
        raise FileNotFoundError(f"{redact_url(path)}: matches no file")
    return [f"{scheme}://{f}" if "://" not in f else f for f in found]


MAX_MEMBER_CEILING = 2 << 30  # --max-member-bytes at most 2 GiB: one member is held in memory


def parse_bytes(text: str) -> int:
    """``--max-member-bytes`` (``67108864``, ``64MB``, ``64MiB``) through the one size parser, bounded."""
    return parse_size(text, 1, MAX_MEMBER_CEILING, "--max-member-bytes")


# -- labels ----------------------------------------------------------------------------------------
@dataclass
class LabelMap:
    """Turns label values into AudioSet MIDs where ``class_labels_indices.csv`` says how: an index
    (``0``..``526``) or a display name becomes its MID, a MID stays; anything else is kept as given."""

    by_index: dict[int, str] = field(default_factory=dict)
    by_name: dict[str, str] = field(default_factory=dict)
    display: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_csv(cls, path: str | None) -> "LabelMap":
        if not path:
            return cls()
        import csv

        from .audioset import read_class_labels

        display = read_class_labels(path)
        by_index: dict[int, str] = {}
        with open(path, newline="", encoding="utf-8-sig") as f:
            for row in list(csv.reader(f))[1:]:
                if len(row) == 3 and row[0].strip().isdigit():
                    by_index[int(row[0])] = row[1].strip()
        return cls(by_index, {n.lower(): m for m, n in display.items()}, display)

    def one(self, v: Any) -> str:
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            raise ValueError(f"label {str(v)[:40]!r} is not a string or an integer")
        s = str(v).strip()
        if _MID_RE.match(s):
            return s
        if s.isdigit() and self.by_index:
            if int(s) not in self.by_index:
                raise ValueError(f"class index {s} is not in the labels CSV")
            return self.by_index[int(s)]
        return self.by_name.get(s.lower(), s)

    def many(self, values: Any) -> list[str]:
        if isinstance(values, str):
            values = [v for v in values.split(",") if v.strip()]
        elif not isinstance(values, list):
            values = [values]
        if len(values) > MAX_LABELS:
            raise ValueError(f"{len(values)} labels: at most {MAX_LABELS}")
        out = [self.one(v) for v in values]
        if not out or any(not s for s in out):
            raise ValueError("no labels")
        return list(dict.fromkeys(out))


def parse_label_member(ext: str, data: bytes, field_name: str, lmap: LabelMap) -> list[str]:
    """Labels of one sample from its json / cls / txt member; ValueError with a short reason."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{ext} member is not UTF-8") from None
    if ext == "json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"json member: {e.msg}") from None
        if not isinstance(doc, dict):
            raise ValueError("json member is not an object")
        names = LABEL_FIELDS if field_name == "auto" else (field_name,)
        for name in names:
            if name in doc and doc[name] not in (None, "", []):
                return lmap.many(doc[name])
        raise ValueError(f"json member has no {' / '.join(names)} field")
    if ext == "cls":
        return lmap.many([t for t in re.split(r"[\s,]+", text) if t])
    return lmap.many(text.strip())


# -- tar listing -----------------------------------------------------------------------------------
@dataclass
class ListOptions:
    audio_exts: tuple[str, ...] = AUDIO_EXTS
    label_exts: tuple[str, ...] = LABEL_EXTS  # () : no labels
    label_field: str = "auto"
    max_member_bytes: int = DEFAULT_MAX_MEMBER

    def digest(self, lmap: LabelMap) -> str:
        doc = [_INDEX_VERSION, self.audio_exts, self.label_exts, self.label_field, self.max_member_bytes,
               sorted(lmap.by_index.items()), sorted(lmap.by_name.items())]
        return hashlib.sha1(json.dumps(doc).encode()).hexdigest()[:16]


def _ext_kind(ext: str, choices: tuple[str, ...]) -> str | None:
    last = ext.rsplit(".", 1)[-1]
    return last if last in choices else None


def list_tar(f: IO[bytes], opts: ListOptions, lmap: LabelMap, total: int | None = None) -> dict[str, Any]:
    """The samples of one tar: ``{"samples": [[raw key, audio member, offset, size, labels, bad]], "truncated":
    reason or None, "no_audio": n}``; ``bad`` is ``[reason class, message]`` for a sample that must fail."""
    samples: list[list] = []
    no_audio = 0
    cur_key: str | None = None
    members: dict[str, TarEntry] = {}

    def want(name: str, size: int) -> bool:
        return _ext_kind(split_name(name)[1], opts.label_exts) is not None and size <= MAX_LABEL_BYTES

    def flush() -> None:
        nonlocal no_audio
        if cur_key is None:
            return
        audio = next(((e, k) for k in opts.audio_exts for ext, e in members.items() if _ext_kind(ext, (k,))), None)
        if audio is None:
            no_audio += 1
            return
        ent = audio[0]
        bad = None
        labels: list[str] | None = None
        why = unsafe_name(ent.name)
        if cur_key == cut_key:  # the sample the archive ends in (its audio or its label member is cut)
            bad = ["truncated", truncated]
        elif why:
            bad = ["unsafe_name", f"{why}: {ent.name[:120]!r}"]
        elif ent.size > opts.max_member_bytes:
            bad = ["too_large", f"member of {ent.size} bytes is larger than --max-member-bytes {opts.max_member_bytes}"]
        elif opts.label_exts:
            lab = next(((ext, e) for k in opts.label_exts for ext, e in members.items() if _ext_kind(ext, (k,))), None)
            if lab is None:
                bad = ["missing_label", f"no {'/'.join(opts.label_exts)} member"]
            elif lab[1].data is None:
                bad = ["bad_label", f"{lab[0]} member of {lab[1].size} bytes is larger than {MAX_LABEL_BYTES}"]
            else:
                try:
                    labels = parse_label_member(lab[0].rsplit(".", 1)[-1], lab[1].data, opts.label_field, lmap)
                except ValueError as e:
                    bad = ["missing_label" if "has no" in str(e) or str(e) == "no labels" else "bad_label", str(e)[:200]]
        samples.append([cur_key, ent.name, ent.offset, ent.size, labels, bad])

    truncated: str | None = None
    cut_key: str | None = None
    try:
        for e in iter_tar(f, want, total):
            key, ext = split_name(e.name)
            if key != cur_key:
                flush()
                cur_key, members = key, {}
            members[ext] = e
        flush()
    except TarTruncated as t:
        truncated = str(t.args[0])
        cut = t.args[1] if len(t.args) > 1 else None
        if cut is not None:  # the sample of the member the archive ends in: a failure of its own
            key, ext = split_name(cut.name)
            if key != cur_key:
                flush()
                cur_key, members = key, {}
            members[ext] = cut
            cut_key = key
        flush()
    except ValueError as e:  # a corrupt header: what came before it is kept, the rest of the tar is lost
        truncated = f"corrupt archive: {e}"
        flush()
    return {"samples": samples, "truncated": truncated, "no_audio": no_audio}


def _list_input(url: str, opts: ListOptions, lmap: LabelMap, allow_pipe: bool) -> dict[str, Any]:
    scheme = scheme_of(url)
    if scheme in ("", "file"):
        with open(url, "rb") as f:
            return list_tar(f, opts, lmap, total=os.fstat(f.fileno()).st_size)
    with open_stream(url, allow_pipe=allow_pipe) as f:
        return list_tar(f, opts, lmap)


# -- the source ------------------------------------------------------------------------------------
@dataclass(slots=True)
class MemberItem(Item):
    """A clip in a tar: input ``src`` (index into the source's inputs), byte range, and why it must fail."""

    src: int = 0
    offset: int = 0
    size: int = 0
    bad: tuple[str, str] | None = None


@dataclass
class WdsSource:
    patterns: list[str]
    out: str
    split: str = "train"
    dataset: str = "wds"
    opts: ListOptions = field(default_factory=ListOptions)
    labels_csv: str | None = None
    allow_pipe: bool = False
    list_threads: int = 4
    retries: int = 3
    progress: bool = False

    def __post_init__(self) -> None:
        self.lmap = LabelMap.from_csv(self.labels_csv)
        self.inputs: list[str] = []
        self.stats: Counter = Counter()
        self.truncated: dict[str, str] = {}
        self._items: list[MemberItem] = []

    def __getstate__(self) -> dict:
        d = dict(self.__dict__)
        d["_items"] = []  # workers get their items with each group
        return d

    @property
    def index_dir(self) -> str:
        return os.path.join(self.out, ".wds-index")

    def _listing(self, url: str) -> dict[str, Any]:
        """The listing of one input; a remote one is cached (per input and listing options)."""
        local = scheme_of(url) in ("", "file")
        path = os.path.join(self.index_dir, hashlib.sha1(f"{url}\0{self.opts.digest(self.lmap)}".encode()).hexdigest()[:24] + ".json")
        if not local and os.path.isfile(path):
            try:
                with open(path) as f:
                    doc = json.load(f)
                if doc.get("version") == _INDEX_VERSION:
                    return doc
            except (OSError, ValueError):
                pass
        last: Exception | None = None
        for attempt in range(1 + (0 if local else self.retries)):
            try:
                doc = _list_input(url, self.opts, self.lmap, self.allow_pipe)
                break
            except Exception as e:  # noqa: BLE001 - network errors of any library: retried, then one line
                last = e
                log.warning("listing %s failed (attempt %d): %s", redact_url(url), attempt + 1, redact_url(str(e))[:200])
                if attempt < self.retries and not local:
                    time.sleep(min(30.0, 2.0 ** attempt))
        else:
            raise UrlError(f"{redact_url(url)}: cannot be read: {redact_url(str(last))[:200]}")
        doc["version"] = _INDEX_VERSION
        doc["input"] = redact_url(url)
        if not local:
            os.makedirs(self.index_dir, exist_ok=True)
            atomic_write_json(path, doc)
        return doc

    def items(self) -> list[Item]:
        self.inputs = expand_sources(self.patterns, self.allow_pipe, "tar")
        workers = max(1, min(self.list_threads, len(self.inputs)))
        with ThreadPoolExecutor(workers) as ex:
            it = ex.map(self._listing, self.inputs)
            if self.progress and len(self.inputs) > 1:
                from tqdm import tqdm

                it = tqdm(it, total=len(self.inputs), desc=f"list {self.dataset} tars", unit="tar")
            listings = list(it)
        items: list[MemberItem] = []
        seen: set[str] = set()
        for src, (url, doc) in enumerate(zip(self.inputs, listings)):
            shown = redact_url(url)
            if doc.get("truncated"):
                self.truncated[shown] = doc["truncated"]
                log.warning("%s: %s; the samples before the cut are kept", shown, doc["truncated"])
            self.stats["no_audio"] += int(doc.get("no_audio", 0))
            for raw, member, offset, size, labels, bad in doc["samples"]:
                key = output_key(raw)
                if key in seen:
                    self.stats["duplicate_keys"] += 1
                    continue
                seen.add(key)
                items.append(MemberItem(key=key, source_id=raw, origin=f"{shown}#{member}", split=self.split,
                                        labels=list(labels or []), src=src, offset=int(offset), size=int(size),
                                        bad=tuple(bad) if bad else None))
        if self.stats["duplicate_keys"]:
            log.warning("%d samples skipped: their key was seen before", self.stats["duplicate_keys"])
        if self.stats["no_audio"]:
            log.warning("%d samples skipped: no %s member", self.stats["no_audio"], "/".join(self.opts.audio_exts))
        self._items = items
        return list(items)

    # -- loading (in the workers) --------------------------------------------------------------
    def _read(self, src: int, offset: int, length: int) -> bytes:
        url = self.inputs[src]
        if scheme_of(url) == "pipe":  # no ranges: stream up to the offset
            with open_stream(url, allow_pipe=True) as f:
                left = offset
                while left:
                    chunk = f.read(min(left, 1 << 20))
                    if not chunk:
                        raise UrlError(f"{url[:60]}: ends before byte {offset}")
                    left -= len(chunk)
                return f.read(length)
        return read_range(url, offset, length)

    def fetch(self, items: list[MemberItem]) -> list[bytes | SkipItem]:
        """The audio bytes of ``items`` (runs of neighbouring members read with one request each)."""
        out: list[bytes | SkipItem | None] = [None] * len(items)
        order = sorted((i for i, it in enumerate(items) if it.bad is None), key=lambda i: (items[i].src, items[i].offset))
        for i, it in enumerate(items):
            if it.bad is not None:
                out[i] = SkipItem(it.bad[0], it.bad[1])
        runs: list[list[int]] = []
        for i in order:
            it = items[i]
            if runs:
                prev = items[runs[-1][-1]]
                start = items[runs[-1][0]].offset
                if (prev.src == it.src and 0 <= it.offset - (prev.offset + prev.size) <= COALESCE_GAP
                        and it.offset + it.size - start <= max(self.opts.max_member_bytes, 4 * COALESCE_GAP)):
                    runs[-1].append(i)
                    continue
            runs.append([i])
        for run in runs:
            first, last = items[run[0]], items[run[-1]]
            try:
                buf = retried(lambda: self._read(first.src, first.offset, last.offset + last.size - first.offset),
                              scheme_of(self.inputs[first.src]) not in ("", "file"), self.retries)
            except (OSError, ValueError) as e:
                err = SkipItem("unreadable", redact_url(str(e))[:200], permanent=scheme_of(self.inputs[first.src]) in ("", "file"))
                for i in run:
                    out[i] = err
                continue
            for i in run:
                a = items[i].offset - first.offset
                out[i] = buf[a:a + items[i].size]
        return out  # type: ignore[return-value]

    def load(self, item: Item, sample_rate: int) -> np.ndarray:
        got = self.load_many([item], sample_rate)[0]
        if isinstance(got, BaseException):
            raise got
        return got

    def load_many(self, items: list[Item], sample_rate: int) -> list[np.ndarray | Exception]:
        blobs = self.fetch(items)  # type: ignore[arg-type]
        todo = [i for i, b in enumerate(blobs) if isinstance(b, bytes)]
        out: list[np.ndarray | Exception] = [b if isinstance(b, Exception) else DecodeError("") for b in blobs]
        for i, res in zip(todo, decode_bytes_many([blobs[i] for i in todo], sample_rate)):  # type: ignore[misc]
            out[i] = res
        return out

    # -- reporting -----------------------------------------------------------------------------
    def shard_common(self, split: str) -> dict[str, Any]:
        return {"display_names": dict(self.lmap.display)} if self.lmap.display else {}

    def manifest_extra(self) -> dict[str, Any]:
        return {"wds": {
            "sources": [redact_url(p) for p in self.patterns], "inputs": len(self.inputs),
            "truncated_inputs": dict(sorted(self.truncated.items())), "skipped": dict(sorted(self.stats.items())),
            "audio_ext": list(self.opts.audio_exts), "label_ext": list(self.opts.label_exts),
            "label_field": self.opts.label_field, "ledger": "ledger.jsonl"}}

    def finalize(self) -> dict[str, Any]:
        return {"ledger": write_ledger(self.out, self.split, self._items, lambda it: {
            "input": redact_url(self.inputs[it.src]), "member": it.origin.rsplit("#", 1)[-1],
            "offset": it.offset, "size": it.size})}  # type: ignore[attr-defined]


def retried(fn: Callable[[], Any], remote: bool, retries: int = 3, backoff: float = 1.0) -> Any:
    """``fn()``, retried with a doubling delay on OSError (network reads: ``remote``); local reads are not retried."""
    for attempt in range(retries + 1 if remote else 1):
        try:
            return fn()
        except OSError as e:
            if not remote or attempt == retries:
                raise
            log.info("read failed (%s), retry %d/%d", redact_url(str(e))[:200], attempt + 1, retries)
            time.sleep(backoff * 2 ** attempt)


def write_ledger(out: str, split: str, items: list, where: Callable[[Any], dict[str, Any]]) -> str | None:
    """``OUT/<split>/ledger.jsonl``: every planned clip, where it comes from and its outcome (``ok``,
    ``permanent`` / ``transient`` with the reason, or ``pending`` while its shard is not written)."""
    d = os.path.join(out, split)
    if not items or not os.path.isdir(d):
        return None
    done: dict[str, dict[str, Any]] = {}
    for p in read_parts(d):
        for k in p.get("keys", []):
            done[k] = {"status": "ok", "shard": p["name"]}
        for f in p.get("failures", []):
            done[str(f.get("key"))] = {"status": "permanent" if f.get("permanent", True) else "transient",
                                       "reason": f.get("reason_class", ""), "message": str(f.get("reason", ""))[:200],
                                       "shard": p["name"]}
    rows = [{"key": it.key, "id": it.source_id, **where(it), **done.get(it.key, {"status": "pending"})}
            for it in sorted(items, key=lambda x: x.key)]
    path = os.path.join(d, "ledger.jsonl")
    atomic_write_lines(path, rows)
    return path


def _csv_list(text: str, choices: tuple[str, ...] | None, flag: str) -> tuple[str, ...]:
    vals = tuple(v.strip().lower().lstrip(".") for v in text.split(",") if v.strip())
    if vals == ("none",):
        return ()
    if choices is not None:
        bad = [v for v in vals if v not in choices]
        if bad:
            raise ValueError(f"{flag} {','.join(bad)}: choose from {','.join(choices)} (or none)")
    if not vals:
        raise ValueError(f"{flag}: give at least one extension")
    return vals


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", nargs="+", help="tar shards: paths, brace patterns ({000000..000123}), globs, or "
                                          "http(s)/s3/gs URLs (quote them)")
    p.add_argument("--dataset", default="wds", help="dataset name used in shard names (default wds)")
    p.add_argument("--split", default="train", help="split name (default train)")
    p.add_argument("--audio-ext", default=",".join(AUDIO_EXTS),
                   help=f"audio member extensions, first present wins (default {','.join(AUDIO_EXTS)})")
    p.add_argument("--label-ext", default=",".join(LABEL_EXTS),
                   help=f"label member extensions, first present wins (default {','.join(LABEL_EXTS)}); none: no labels")
    p.add_argument("--label-field", default="auto",
                   help=f"field of the json member holding the labels (default auto: the first of {', '.join(LABEL_FIELDS)})")
    p.add_argument("--labels", default=None, metavar="CSV",
                   help="AudioSet class_labels_indices.csv: class indices and display names become MIDs")
    p.add_argument("--max-member-bytes", type=parse_bytes, default=DEFAULT_MAX_MEMBER,
                   help=f"larger audio members fail as too_large (default {DEFAULT_MAX_MEMBER >> 20} MiB)")
    p.add_argument("--allow-pipe", action="store_true", help="accept pipe:COMMAND sources (they run a shell command)")
    p.add_argument("--list-threads", type=bounded_int(1, 64), default=4, help="tars listed at once (default 4)")


@SOURCES.register("wds")
class WdsSpec(SourceSpec):
    help = "WebDataset tars of audio (local, brace patterns, globs, http(s)/s3/gs)"
    add_args = staticmethod(add_args)

    @staticmethod
    def run(a: argparse.Namespace) -> WdsSource:
        opts = ListOptions(_csv_list(a.audio_ext, AUDIO_EXTS, "--audio-ext"), _csv_list(a.label_ext, LABEL_EXTS, "--label-ext"),
                           a.label_field, a.max_member_bytes)
        if not opts.audio_exts:
            raise ValueError("--audio-ext: give at least one audio extension")
        return WdsSource(list(a.src), a.out, split=a.split, dataset=a.dataset, opts=opts, labels_csv=a.labels,
                         allow_pipe=a.allow_pipe, list_threads=a.list_threads, progress=not a.no_progress)

