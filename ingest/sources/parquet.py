"""``python -m ingest parquet 'SRC/*.parquet' --out DIR``: Hugging Face ``datasets`` parquet files of audio.

Inputs are paths, brace patterns, globs or URLs as for the ``wds`` source (:func:`.wds.expand_sources`;
http(s) files are read by range requests, s3/gs through fsspec).  Each file is read with pyarrow one row
group at a time, so memory stays flat: the listing pass reads only ``--id-column`` and
``--label-column``; the workers read the ``--audio-column`` of the row groups their clips lie in.  The
audio column is a struct with ``bytes`` (and ``path``: the ``datasets`` Audio feature), plain bytes, or a
path string (relative to the parquet file, no ``..``).  Audio is decoded in memory
(:func:`ingest.decode.decode_bytes_many`), exactly as the folder source decodes the same file.

Keys are the ``--id-column`` values (``video_id`` for ``agkphysics/AudioSet``); labels (a list of strings
or integers, or one comma-separated string) become AudioSet MIDs as in the ``wds`` source (``--labels``).
A file without a needed column, or whose column has the wrong type, is one ``error:`` line; a row without
an id is skipped (counted), one without audio or labels, or with oversized audio (``--max-member-bytes``),
is a failure in ``failures.jsonl``.
"""
from __future__ import annotations

import argparse
import io
import logging
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from shards.redact import redact_url
from shards.remote import UrlError, open_stream, read_range, scheme_of

from ..decode import DecodeError, decode_bytes_many
from ..engine import Item, SkipItem
from . import SOURCES, SourceSpec
from .wds import DEFAULT_MAX_MEMBER, LabelMap, expand_sources, output_key, parse_bytes, retried, unsafe_name, write_ledger

log = logging.getLogger("melstream.ingest.parquet")

MAX_ID_CHARS = 200


class RangeFile(io.RawIOBase):
    """A seekable, read-only file over HTTP range requests (pyarrow reads a parquet footer, then its columns)."""

    def __init__(self, url: str):
        import requests

        self.url, self.pos = url, 0
        try:
            r = requests.head(url, allow_redirects=True, timeout=60)
            r.raise_for_status()
            self.size = int(r.headers["Content-Length"])
        except (requests.RequestException, KeyError, ValueError) as e:
            raise UrlError(f"{redact_url(url)}: cannot get its size: {redact_url(str(e))[:200]}") from None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: 0, 1: self.pos, 2: self.size}[whence] + offset
        return self.pos

    def readinto(self, b) -> int:
        n = max(0, min(len(b), self.size - self.pos))
        if n == 0:
            return 0
        data = read_range(self.url, self.pos, n)
        b[:n] = data
        self.pos += n
        return n


def open_parquet(url: str):
    """A ``pyarrow.parquet.ParquetFile`` of a path or URL; a one-line error when it is not parquet."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("the parquet source needs pyarrow: pip install 'melstream[parquet]'") from None
    scheme = scheme_of(url)
    if scheme in ("", "file"):
        src: Any = url[len("file://"):] if scheme == "file" else url
    elif scheme in ("http", "https"):
        src = RangeFile(url)
    else:
        src = open_stream(url)
    try:
        return pq.ParquetFile(src)
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid / OSError for a file that is not parquet
        raise ValueError(f"{redact_url(url)}: not a readable parquet file: {str(e)[:200]}") from None


def _kind(t: Any) -> str:
    """What a column type can hold for us: struct / binary / string / list / int / other."""
    import pyarrow as pa

    if pa.types.is_struct(t):
        return "struct"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "binary"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "list"
    if pa.types.is_integer(t):
        return "int"
    return "other"


def check_schema(schema: Any, url: str, id_col: str, audio_col: str, label_col: str | None) -> None:
    """One-line ValueError for a missing column or a type we cannot read (``schema``: pyarrow's arrow schema)."""
    names = set(schema.names)
    where = redact_url(url)
    for col in [id_col, audio_col] + ([label_col] if label_col else []):
        if col not in names:
            raise ValueError(f"{where}: no column {col!r} (columns: {', '.join(sorted(names))[:200]}); "
                             f"choose with --id-column / --audio-column / --label-column")
    t = schema.field(audio_col).type
    k = _kind(t)
    if k == "struct":
        sub = {t.field(i).name: _kind(t.field(i).type) for i in range(t.num_fields)}
        if sub.get("bytes") != "binary" and sub.get("path") != "string":
            raise ValueError(f"{where}: column {audio_col!r} is a struct without 'bytes' (binary) or 'path' (string)")
    elif k not in ("binary", "string"):
        raise ValueError(f"{where}: column {audio_col!r} is {t}, expected a struct with 'bytes', binary, or a path string")
    if _kind(schema.field(id_col).type) not in ("string", "int"):
        raise ValueError(f"{where}: column {id_col!r} is {schema.field(id_col).type}, expected strings or integers")
    if label_col:
        lt = schema.field(label_col).type
        ok = _kind(lt) in ("string", "int") or (_kind(lt) == "list" and _kind(lt.value_type) in ("string", "int"))
        if not ok:
            raise ValueError(f"{where}: column {label_col!r} is {lt}, expected a list of strings/integers or a string")


@dataclass(slots=True)
class RowItem(Item):
    """A clip in a parquet file: input ``src``, row group and row within it, and why it must fail."""

    src: int = 0
    group: int = 0
    row: int = 0
    bad: tuple[str, str] | None = None


# per-process cache of the worker: open files and the last row group's audio column
_CACHE: dict[str, Any] = {}


@dataclass
class ParquetSource:
    patterns: list[str]
    out: str
    split: str = "train"
    dataset: str = "parquet"
    audio_column: str = "audio"
    label_column: str | None = "labels"
    id_column: str = "video_id"
    labels_csv: str | None = None
    max_member_bytes: int = DEFAULT_MAX_MEMBER
    progress: bool = False

    def __post_init__(self) -> None:
        self.lmap = LabelMap.from_csv(self.labels_csv)
        self.inputs: list[str] = []
        self.stats: Counter = Counter()
        self._items: list[RowItem] = []

    def __getstate__(self) -> dict:
        d = dict(self.__dict__)
        d["_items"] = []
        return d

    def items(self) -> list[Item]:
        self.inputs = expand_sources(self.patterns, False, "parquet")
        items: list[RowItem] = []
        seen: set[str] = set()
        urls: Any = enumerate(self.inputs)
        if self.progress and len(self.inputs) > 1:
            from tqdm import tqdm

            urls = tqdm(urls, total=len(self.inputs), desc=f"list {self.dataset} files", unit="file")
        for src, url in urls:
            pf = open_parquet(url)
            check_schema(pf.schema_arrow, url, self.id_column, self.audio_column, self.label_column)
            shown = redact_url(url)
            cols = [self.id_column] + ([self.label_column] if self.label_column else [])
            for g in range(pf.num_row_groups):
                t = pf.read_row_group(g, columns=cols)
                ids = t.column(self.id_column).to_pylist()
                labs = t.column(self.label_column).to_pylist() if self.label_column else [None] * len(ids)
                for r, (vid, lab) in enumerate(zip(ids, labs)):
                    if vid is None or str(vid).strip() == "" or len(str(vid)) > MAX_ID_CHARS:
                        self.stats["bad_id"] += 1
                        continue
                    key = output_key(str(vid).strip())
                    if key in seen:
                        self.stats["duplicate_keys"] += 1
                        continue
                    seen.add(key)
                    bad = None
                    labels: list[str] = []
                    if self.label_column:
                        try:
                            labels = self.lmap.many(lab if lab is not None else [])
                        except ValueError as e:
                            bad = ("missing_label" if lab in (None, [], "") or str(e) == "no labels" else "bad_label", str(e)[:200])
                    items.append(RowItem(key=key, source_id=str(vid), origin=f"{shown}#row={g}:{r}", split=self.split,
                                         labels=labels, src=src, group=g, row=r, bad=bad))
        for what, n in sorted(self.stats.items()):
            log.warning("%d rows skipped: %s", n, what)
        self._items = items
        return list(items)

    # -- loading (in the workers) --------------------------------------------------------------
    def _file(self, src: int):
        key = f"file:{os.getpid()}:{src}:{self.inputs[src]}"
        pf = _CACHE.get(key)
        if pf is None:
            for k in [k for k in _CACHE if k.startswith("file:")]:
                del _CACHE[k]  # one open file per process
            pf = _CACHE[key] = open_parquet(self.inputs[src])
        return pf

    def _group(self, src: int, group: int) -> list[Any]:
        """The audio column of one row group as Python values (cached: the engine's next group of clips
        usually lies in the same row group)."""
        key = ("group", os.getpid(), src, group, self.inputs[src])
        if _CACHE.get("group_key") == key:
            return _CACHE["group"]
        pf = self._file(src)
        meta = pf.metadata.row_group(group)
        col = next((meta.column(i) for i in range(meta.num_columns)
                    if meta.column(i).path_in_schema.split(".")[0] == self.audio_column), None)
        need = sum(meta.column(i).total_uncompressed_size for i in range(meta.num_columns)
                   if meta.column(i).path_in_schema.split(".")[0] == self.audio_column) if col is not None else 0
        limit = self.max_member_bytes * max(1, meta.num_rows)
        if need > limit:  # sized before it is read
            raise SkipItem("too_large", f"row group {group} holds {need} bytes of audio, more than "
                                        f"--max-member-bytes x rows ({limit})")
        _CACHE.pop("group", None)
        vals = retried(lambda: pf.read_row_group(group, columns=[self.audio_column]).column(0).to_pylist(),
                       scheme_of(self.inputs[src]) not in ("", "file"))
        _CACHE["group_key"], _CACHE["group"] = key, vals
        return vals

    def _audio_bytes(self, it: RowItem) -> bytes:
        try:
            v = self._group(it.src, it.group)[it.row]
        except (OSError, ValueError) as e:
            remote = scheme_of(self.inputs[it.src]) not in ("", "file")
            raise SkipItem("unreadable", redact_url(str(e))[:200], permanent=not remote) from None
        path = None
        if isinstance(v, dict):
            data, path = v.get("bytes"), v.get("path")
        elif isinstance(v, (bytes, bytearray)):
            data = bytes(v)
        else:
            data, path = None, v
        if data:
            if len(data) > self.max_member_bytes:
                raise SkipItem("too_large", f"audio of {len(data)} bytes is larger than --max-member-bytes {self.max_member_bytes}")
            return bytes(data)
        if not path:
            raise SkipItem("missing_audio", "no audio bytes and no path")
        return self._audio_file(it.src, str(path))

    def _audio_file(self, src: int, path: str) -> bytes:
        why = unsafe_name(path)
        if why:
            raise SkipItem("unsafe_name", f"{why}: {path[:120]!r}")
        url = self.inputs[src]
        base = url.rsplit("/", 1)[0] if "/" in url else "."
        full = os.path.join(base, path) if scheme_of(url) in ("", "file") else f"{base}/{path}"
        try:
            if scheme_of(full) in ("", "file"):
                size = os.path.getsize(full)
                if size > self.max_member_bytes:
                    raise SkipItem("too_large", f"{path}: {size} bytes is larger than --max-member-bytes")
            with open_stream(full) as f:
                data = f.read(self.max_member_bytes + 1)
        except OSError as e:
            raise SkipItem("missing_audio", f"{path}: {redact_url(str(e))[:200]}") from None
        if len(data) > self.max_member_bytes:
            raise SkipItem("too_large", f"{path}: larger than --max-member-bytes {self.max_member_bytes}")
        return data

    def load(self, item: Item, sample_rate: int) -> np.ndarray:
        got = self.load_many([item], sample_rate)[0]
        if isinstance(got, BaseException):
            raise got
        return got

    def load_many(self, items: list[Item], sample_rate: int) -> list[np.ndarray | Exception]:
        out: list[Any] = [None] * len(items)
        for i, it in sorted(enumerate(items), key=lambda p: (p[1].src, p[1].group, p[1].row)):  # type: ignore[attr-defined]
            if it.bad is not None:  # type: ignore[attr-defined]
                out[i] = SkipItem(*it.bad)  # type: ignore[attr-defined]
                continue
            try:
                out[i] = self._audio_bytes(it)  # type: ignore[arg-type]
            except SkipItem as e:
                out[i] = e
        todo = [i for i, b in enumerate(out) if isinstance(b, bytes)]
        for i, res in zip(todo, decode_bytes_many([out[i] for i in todo], sample_rate)):
            out[i] = res
        return [o if not isinstance(o, bytes) else DecodeError("not decoded") for o in out]

    # -- reporting -----------------------------------------------------------------------------
    def shard_common(self, split: str) -> dict[str, Any]:
        return {"display_names": dict(self.lmap.display)} if self.lmap.display else {}

    def manifest_extra(self) -> dict[str, Any]:
        return {"parquet": {
            "sources": [redact_url(p) for p in self.patterns], "inputs": len(self.inputs),
            "columns": {"id": self.id_column, "audio": self.audio_column, "labels": self.label_column},
            "skipped_rows": dict(sorted(self.stats.items())), "ledger": "ledger.jsonl"}}

    def finalize(self) -> dict[str, Any]:
        _CACHE.clear()
        return {"ledger": write_ledger(self.out, self.split, self._items, lambda it: {
            "input": redact_url(self.inputs[it.src]), "row_group": it.group, "row": it.row})}


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", nargs="+", help="parquet files: paths, brace patterns, globs, or http(s)/s3/gs URLs (quote them)")
    p.add_argument("--dataset", default="parquet", help="dataset name used in shard names (default parquet)")
    p.add_argument("--split", default="train", help="split name (default train)")
    p.add_argument("--audio-column", default="audio", help="struct with bytes (and path), bytes, or a path (default audio)")
    p.add_argument("--label-column", default="labels", help="labels column (default labels); none: no labels")
    p.add_argument("--id-column", default="video_id", help="clip ID column, used as the key (default video_id)")
    p.add_argument("--labels", default=None, metavar="CSV",
                   help="AudioSet class_labels_indices.csv: class indices and display names become MIDs")
    p.add_argument("--max-member-bytes", type=parse_bytes, default=DEFAULT_MAX_MEMBER,
                   help=f"larger audio values fail as too_large (default {DEFAULT_MAX_MEMBER >> 20} MiB)")


@SOURCES.register("parquet")
class ParquetSpec(SourceSpec):
    help = "Hugging Face datasets parquet files of audio (local or http(s)/s3/gs)"
    add_args = staticmethod(add_args)

    @staticmethod
    def run(a: argparse.Namespace) -> ParquetSource:
        label = None if a.label_column.strip().lower() == "none" else a.label_column
        return ParquetSource(list(a.src), a.out, split=a.split, dataset=a.dataset, audio_column=a.audio_column,
                             label_column=label, id_column=a.id_column, labels_csv=a.labels,
                             max_member_bytes=a.max_member_bytes, progress=not a.no_progress)

