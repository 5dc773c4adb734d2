"""``python -m ingest parquet``: Hugging Face ``datasets`` parquet (audio struct of FLAC/MP3 bytes), from disk
and over HTTP, bit-identical to the folder source; labels -> MIDs; hostile columns and rows."""
from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _http_server import MediaServer
from _media import MIDS, failures, make_clips, mels

from ingest.__main__ import main


def _table(paths: list[str], **override) -> pa.Table:
    """The ``agkphysics/AudioSet`` layout: video_id, audio {bytes, path}, labels (MIDs), human_labels."""
    cols = {
        "video_id": [f"-vid{i}_x" for i in range(len(paths))],
        "audio": [{"bytes": open(p, "rb").read(), "path": os.path.basename(p)} for p in paths],
        "labels": [[MIDS[i % 4], MIDS[(i + 1) % 4]] for i in range(len(paths))],
        "human_labels": [["x"] for _ in paths],
    }
    cols.update(override)
    return pa.table(cols)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    base = tmp_path_factory.mktemp("parquet")
    paths = make_clips(str(base / "audio"), 4)
    os.makedirs(base / "pq")
    pq.write_table(_table(paths[:3]), base / "pq" / "part-0.parquet", row_group_size=2)
    pq.write_table(_table(paths[3:], video_id=["-vid3_x"]), base / "pq" / "part-1.parquet")
    return base, paths


def test_parquet_mels_are_bit_identical_to_folder_local_and_http(clips, tmp_path):
    base, paths = clips
    assert main(["folder", str(base / "audio"), "--out", str(tmp_path / "f"), "--no-progress"]) == 0
    assert main(["parquet", str(base / "pq" / "*.parquet"), "--out", str(tmp_path / "p"), "--shard-size", "3",
                 "--no-progress"]) == 0
    f, p = mels(tmp_path / "f" / "train"), mels(tmp_path / "p" / "train")
    assert sorted(p) == [f"-vid{i}_x" for i in range(4)]
    for i in range(4):
        fkey = next(k for k in f if k.startswith(f"clip_{i}_"))
        assert np.array_equal(p[f"-vid{i}_x"][0], f[fkey][0]), f"clip {i} differs"
        row = i if i < 3 else 0  # clip 3 is row 0 of part-1
        assert p[f"-vid{i}_x"][1]["labels"] == [MIDS[row], MIDS[row + 1]]
    m = json.loads((tmp_path / "p" / "train" / "manifest.json").read_text())
    assert m["parquet"]["inputs"] == 2 and m["parquet"]["columns"]["id"] == "video_id"
    ledger = [json.loads(x) for x in (tmp_path / "p" / "train" / "ledger.jsonl").read_text().splitlines()]
    assert [(r["row_group"], r["row"], r["status"]) for r in ledger] == [(0, 0, "ok"), (0, 1, "ok"), (1, 0, "ok"), (0, 0, "ok")]

    with MediaServer() as srv:  # the same files over HTTP (range requests), credentials never written
        for n in ("part-0.parquet", "part-1.parquet"):
            srv.add("/hf/" + n, (base / "pq" / n).read_bytes())
        url = f"https://user:s3cret@127.0.0.1:{srv.port}/hf/part-{{0,1}}.parquet".replace("https", "http")
        assert main(["parquet", url, "--out", str(tmp_path / "h"), "--shard-size", "3", "--no-progress"]) == 0
        assert srv.ranges, "read by range requests"
    h = mels(tmp_path / "h" / "train")  # same clips; only the origin (the URL, redacted) differs
    assert sorted(h) == sorted(p) and all(np.array_equal(h[k][0], p[k][0]) for k in p)
    assert h["-vid0_x"][1]["origin"].startswith("http://***@127.0.0.1")
    for name in ("manifest.json", "ledger.jsonl"):
        assert "s3cret" not in (tmp_path / "h" / "train" / name).read_text()


def test_parquet_labels_paths_and_hostile_rows(clips, tmp_path, capsys):
    base, paths = clips
    flac = open(paths[0], "rb").read()
    csv = tmp_path / "class_labels_indices.csv"
    csv.write_text('index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/04rlf,"Music"\n')
    audio = [{"bytes": flac, "path": None}, {"bytes": None, "path": os.path.basename(paths[1])},
             {"bytes": None, "path": "../escape.flac"}, {"bytes": b"garbage" * 50, "path": None},
             {"bytes": flac + bytes(200_000), "path": None}, {"bytes": flac, "path": None},
             {"bytes": None, "path": None}, {"bytes": flac, "path": None}]
    t = pa.table({"id": ["a", "b", "c", "d", "e", "f", "g", None], "audio": audio,
                  "labels": [[0, 1], [1], [0], [0], [0], None, [0], [0]]})
    pq.write_table(t, base / "audio" / "rows.parquet", row_group_size=3)  # next to the clips its paths name
    out = tmp_path / "o"
    assert main(["parquet", str(base / "audio" / "rows.parquet"), "--out", str(out), "--id-column", "id", "--labels", str(csv),
                 "--max-member-bytes", "150000", "--no-progress"]) == 0
    got = mels(out / "train")
    assert sorted(got) == ["a", "b"]
    assert got["a"][1]["labels"] == ["/m/09x0r", "/m/04rlf"] and got["b"][1]["labels"] == ["/m/04rlf"]
    assert failures(out / "train") == {"c": "unsafe_name", "d": "undecodable", "e": "too_large", "f": "missing_label",
                                       "g": "missing_audio"}
    assert json.loads((out / "train" / "manifest.json").read_text())["parquet"]["skipped_rows"] == {"bad_id": 1}

    # a missing column, a wrong type, a file that is not parquet: one line each
    pq.write_table(pa.table({"video_id": ["a"], "audio": [1], "labels": [["/m/09x0r"]]}), tmp_path / "int.parquet")
    (tmp_path / "not.parquet").write_bytes(b"PAR1 nope")
    capsys.readouterr()
    for argv, words in [
        ([str(base / "pq" / "part-1.parquet"), "--label-column", "tags"], "no column 'tags'"),
        ([str(tmp_path / "int.parquet")], "column 'audio' is int64"),
        ([str(tmp_path / "not.parquet")], "not a readable parquet file"),
    ]:
        assert main(["parquet", *argv, "--out", str(tmp_path / "x"), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and words in err and len(err.splitlines()) == 1, err
