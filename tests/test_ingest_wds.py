"""``python -m ingest wds``: WebDataset audio tars from disk and over HTTP, bit-identical to the folder source,
labels -> AudioSet MIDs, hostile members, and a killed remote ingest that resumes to the same shards."""
from __future__ import annotations

import io
import json
import os
import tarfile

import numpy as np
import pytest
from _http_server import MediaServer
from _media import MIDS, failures, label_json, make_clips, mels, shard_hashes, tar_bytes

from ingest.__main__ import main
from ingest.engine import IngestConfig, run_ingest
from ingest.sources.wds import ListOptions, WdsSource, expand_sources, output_key
from shards.__main__ import main as shards_main


def _ext(path: str) -> str:
    return os.path.splitext(path)[1][1:]


def _write_tars(folder, paths: list[str], per_tar: int = 2) -> list[str]:
    """Tars ``00000i.tar`` of ``per_tar`` samples ``clip<i>`` (audio + json labels)."""
    os.makedirs(folder, exist_ok=True)
    samples = [(f"clip{i}", {_ext(p): open(p, "rb").read(), "json": label_json(i)}) for i, p in enumerate(paths)]
    out = []
    for t in range(0, len(samples), per_tar):
        name = os.path.join(folder, f"{t // per_tar:06d}.tar")
        with open(name, "wb") as f:
            f.write(tar_bytes(samples[t:t + per_tar]))
        out.append(name)
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Four clips (FLAC 44.1 kHz stereo / MP3 16 kHz in turn) in a folder, and the same as two tars."""
    base = tmp_path_factory.mktemp("wds")
    paths = make_clips(str(base / "audio"), 4)
    tars = _write_tars(str(base / "tars"), paths)
    return base, paths, tars


def test_wds_mels_are_bit_identical_to_folder(clips, tmp_path):
    base, paths, tars = clips
    assert main(["folder", str(base / "audio"), "--out", str(tmp_path / "f"), "--no-progress"]) == 0
    # two decoding processes share the items of every shard (tests/test_ingest_partition.py: both get work)
    assert main(["wds", str(base / "tars" / "{000000..000001}.tar"), "--out", str(tmp_path / "w"), "--no-progress",
                 "--workers", "2", "--decode-batch", "1", "--shard-size", "3"]) == 0
    f, w = mels(tmp_path / "f" / "train"), mels(tmp_path / "w" / "train")
    assert sorted(w) == [f"clip{i}" for i in range(4)]
    for i in range(4):
        fkey = next(k for k in f if k.startswith(f"clip_{i}_"))
        assert np.array_equal(w[f"clip{i}"][0], f[fkey][0]), f"clip {i} ({_ext(paths[i])}) differs"
        assert w[f"clip{i}"][1]["labels"] == [MIDS[i]]
        assert w[f"clip{i}"][1]["origin"].endswith(f"{i // 2:06d}.tar#clip{i}.{_ext(paths[i])}")
    m = json.loads((tmp_path / "w" / "train" / "manifest.json").read_text())
    assert m["wds"]["inputs"] == 2 and m["wds"]["sources"] == [str(base / "tars" / "{000000..000001}.tar")]
    assert m["labels"]["vocabulary"] == sorted(MIDS) and m["totals"]["shards"] == 2
    ledger = [json.loads(line) for line in (tmp_path / "w" / "train" / "ledger.jsonl").read_text().splitlines()]
    assert [r["key"] for r in ledger] == [f"clip{i}" for i in range(4)] and {r["status"] for r in ledger} == {"ok"}

    # a glob gives the same inputs; two jobs + `shards merge` give the same shards
    assert expand_sources([str(base / "tars" / "*.tar")]) == tars
    out2 = tmp_path / "jobs"
    for j in (0, 1):
        assert main(["wds", str(base / "tars" / "*.tar"), "--out", str(out2), "--no-progress", "--shard-size", "3",
                     "--num-jobs", "2", "--job-index", str(j)]) == 0
    assert shards_main(["merge", str(out2 / "train")]) == 0
    assert shard_hashes(out2 / "train") == shard_hashes(tmp_path / "w" / "train")


def test_wds_label_members_and_choices(tmp_path, clips):
    base, paths, _ = clips
    flac, mp3 = open(paths[0], "rb").read(), open(paths[1], "rb").read()
    csv = tmp_path / "class_labels_indices.csv"
    csv.write_text('index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/04rlf,"Music"\n2,/m/0jbk,"Animal"\n')
    tar = tmp_path / "t.tar"
    tar.write_bytes(tar_bytes([
        ("a", {"cls": b"1 2\n", "flac": flac}),                                 # class indices
        ("b", {"flac": flac, "mp3": mp3, "txt": b"Speech,/t/dd00088"}),          # display name + MID
        ("c", {"json": json.dumps({"tags": ["Music"], "labels": [0]}).encode(), "flac": flac}),
        ("d", {"mp3": mp3}),                                                     # no label member
    ]))
    out = tmp_path / "o"
    assert main(["wds", str(tar), "--out", str(out), "--labels", str(csv), "--no-progress"]) == 0
    got = mels(out / "train")
    assert got["a"][1]["labels"] == ["/m/04rlf", "/m/0jbk"]
    assert got["b"][1]["labels"] == ["/m/09x0r", "/t/dd00088"]
    assert got["c"][1]["labels"] == ["/m/09x0r"]  # auto: "labels" before "tags"
    assert failures(out / "train") == {"d": "missing_label"}
    m = json.loads((out / "train" / "manifest.json").read_text())
    assert m["labels"]["display_names"]["/m/04rlf"] == "Music"

    out2 = tmp_path / "o2"  # --label-field, --audio-ext order, --label-ext none
    assert main(["wds", str(tar), "--out", str(out2), "--labels", str(csv), "--label-field", "tags", "--label-ext", "json",
                 "--no-progress"]) == 0
    assert mels(out2 / "train")["c"][1]["labels"] == ["/m/04rlf"]
    assert set(failures(out2 / "train")) == {"a", "b", "d"}
    out3 = tmp_path / "o3"
    assert main(["wds", str(tar), "--out", str(out3), "--audio-ext", "mp3,flac", "--label-ext", "none", "--no-progress"]) == 0
    got3 = mels(out3 / "train")
    assert sorted(got3) == ["a", "b", "c", "d"] and got3["b"][1]["origin"].endswith("#b.mp3")
    assert got3["a"][1]["labels"] == []
    out4 = tmp_path / "o4"  # a pipe: source, opted in (listing streams it; each clip is read by skipping to it)
    assert main(["wds", f"pipe:cat {tar}", "--allow-pipe", "--out", str(out4), "--audio-ext", "mp3,flac", "--label-ext", "none",
                 "--no-progress"]) == 0
    got4 = mels(out4 / "train")
    assert sorted(got4) == sorted(got3) and all(np.array_equal(got4[k][0], got3[k][0]) for k in got3)


def test_wds_hostile_members_fail_one_by_one(tmp_path, clips, capsys):
    base, paths, _ = clips
    flac = open(paths[0], "rb").read()
    lab = label_json(0)
    data = tar_bytes([
        ("../up", {"flac": flac, "json": lab}),         # path escaping upwards
        ("/abs/x", {"flac": flac, "json": lab}),        # absolute path
        ("dir/ok", {"flac": flac, "json": lab}),        # a plain sub-folder is fine
        ("big", {"flac": flac + bytes(300_000), "json": lab}),
        ("junk", {"flac": b"not audio at all" * 100, "json": lab}),
        ("nolab", {"flac": flac, "json": b'{"other": 1}'}),
        ("good", {"flac": flac, "json": lab}),
        ("last", {"json": lab, "flac": flac}),
    ])
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        cut = tf.getmember("last.flac").offset_data + len(flac) // 2  # inside the last member's audio
        header = tf.getmember("../up.json").offset + 100  # inside the second header
    tar = tmp_path / "hostile.tar"
    tar.write_bytes(data[:cut])
    out = tmp_path / "o"
    assert main(["wds", str(tar), "--out", str(out), "--max-member-bytes", "250000", "--no-progress"]) == 0
    got = mels(out / "train")
    ok_key = output_key("dir/ok")
    assert sorted(got) == sorted(["good", ok_key]) and ok_key.startswith("dir-ok_")
    fails = failures(out / "train")
    assert fails == {output_key("../up"): "unsafe_name", output_key("/abs/x"): "unsafe_name", "big": "too_large",
                     "junk": "undecodable", "nolab": "missing_label", "last": "truncated"}
    m = json.loads((out / "train" / "manifest.json").read_text())
    assert list(m["wds"]["truncated_inputs"].values())[0].startswith("archive ends inside member 'last.flac'")
    # a tar cut inside a header keeps the samples before it
    (tmp_path / "cut.tar").write_bytes(data[:header])
    src = WdsSource([str(tmp_path / "cut.tar")], str(tmp_path / "x"), opts=ListOptions(label_exts=()))
    items = src.items()
    assert [(it.source_id, it.bad[0]) for it in items] == [("../up", "unsafe_name")]  # type: ignore[index]
    assert "inside a header" in list(src.truncated.values())[0]
    # a tar cut inside the label member that follows the audio: that sample fails as truncated too
    tail = tar_bytes([("s", {"flac": flac, "json": json.dumps({"labels": MIDS[0], "pad": "x" * 4000}).encode()})])
    with tarfile.open(fileobj=io.BytesIO(tail)) as tf:
        (tmp_path / "cutlabel.tar").write_bytes(tail[:tf.getmember("s.json").offset_data + 1000])
    src = WdsSource([str(tmp_path / "cutlabel.tar")], str(tmp_path / "x"))
    assert [(it.key, it.bad[0]) for it in src.items()] == [("s", "truncated")]  # type: ignore[index]
    # a corrupt header (bad checksum): the samples before it are kept, the rest of that tar is logged as lost
    bad = bytearray(data)
    bad[header - 100 + 10] ^= 0xFF
    (tmp_path / "corrupt.tar").write_bytes(bytes(bad))
    src = WdsSource([str(tmp_path / "corrupt.tar")], str(tmp_path / "x"), opts=ListOptions(label_exts=()))
    assert [it.source_id for it in src.items()] == ["../up"]
    assert list(src.truncated.values())[0].startswith("corrupt archive: corrupt tar header at byte")

    # refused inputs and flags: one line each, no traceback
    capsys.readouterr()
    for argv, words in [
        (["wds", "pipe:cat x.tar", "--out", str(tmp_path / "p")], "--allow-pipe"),
        (["wds", str(tmp_path / "none-*.tar"), "--out", str(tmp_path / "p")], "matches no file"),
        (["wds", str(tar), "--audio-ext", "exe", "--out", str(tmp_path / "p")], "--audio-ext exe"),
        (["wds", "https://127.0.0.1:9/x/*.tar", "--out", str(tmp_path / "p")], "cannot be globbed"),
    ]:
        assert main(argv + ["--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and words in err and "Traceback" not in err and len(err.splitlines()) == 1


class _Killed(Exception):
    pass


def test_wds_remote_killed_then_resumed_matches_uninterrupted(clips, tmp_path):
    base, paths, tars = clips
    with MediaServer() as srv:
        for t in tars:
            srv.add("/ds/" + os.path.basename(t), open(t, "rb").read())
        pattern = f"http://user:s3cret@127.0.0.1:{srv.port}/ds/{{000000..000001}}.tar?token=tok3n"
        ref = tmp_path / "ref"
        assert main(["wds", pattern, "--out", str(ref), "--shard-size", "1", "--no-progress"]) == 0

        out = tmp_path / "run"
        src = WdsSource([pattern], str(out))
        with pytest.raises(_Killed):  # killed after its first shard, in the middle of the second
            run_ingest(src, IngestConfig(out=str(out), shard_size="1", progress=False),
                       on_done=lambda rec: (_ for _ in ()).throw(_Killed()))
        split = out / "train"
        assert sorted(n for n in os.listdir(split) if n.endswith(".tar")) == ["wds-train-000000.tar"]
        (split / "wds-train-000001.tar.999.tmp").write_bytes(b"partial")  # what a SIGKILL leaves behind
        full_gets = dict(srv.hits)
        assert main(["wds", pattern, "--out", str(out), "--shard-size", "1", "--no-progress"]) == 0
        # the resumed run read the audio by ranges: no tar was streamed whole again (listings are cached)
        streamed = {p: srv.hits[p] - full_gets.get(p, 0) - sum(1 for q, _ in srv.ranges if q == p) for p in srv.hits}
        assert all(n <= 0 for n in streamed.values()), streamed
    assert shard_hashes(split) == shard_hashes(ref / "train")
    assert sorted(mels(split)) == sorted(mels(ref / "train")) == [f"clip{i}" for i in range(4)]
    assert not any(n.endswith(".tmp") for n in os.listdir(split))
    for p in [split / "manifest.json", split / "ledger.jsonl", split / "failures.jsonl",
              *[out / ".wds-index" / n for n in os.listdir(out / ".wds-index")]]:
        text = p.read_text()
        assert "s3cret" not in text and "tok3n" not in text, p
    meta = mels(split)["clip0"][1]
    assert "s3cret" not in json.dumps(meta) and meta["origin"].startswith("http://***@127.0.0.1")


def test_in_memory_decode_matches_disk_also_through_pipes(clips):
    """decode_bytes_many (in-memory files) and the pipe fallback used where memfd is missing give the samples
    decode_audio gives for the file on disk (the pipe path keeps an MP3's end padding, so FLAC only there)."""
    from ingest.decode import _pipe_group, decode_audio, decode_bytes_many

    _, paths, _ = clips
    blobs = [open(p, "rb").read() for p in paths]
    disk = [decode_audio(p) for p in paths]
    assert all(np.array_equal(a, b) for a, b in zip(disk, decode_bytes_many(blobs)))
    flacs = [i for i, p in enumerate(paths) if p.endswith(".flac")]
    piped = _pipe_group([blobs[i] for i in flacs] + [b"junk" * 64], 16000, 60.0)
    assert piped is None  # one bad input fails the group call: decode_bytes_many then decodes each alone
    piped = _pipe_group([blobs[i] for i in flacs], 16000, 60.0)
    assert piped is not None and all(np.array_equal(disk[i], got) for i, got in zip(flacs, piped))
