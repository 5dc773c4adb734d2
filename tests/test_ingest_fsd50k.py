"""FSD50K: official layout -> train/val/eval shards; --download against a local Zenodo-like server
(split archives built here, a connection dropped mid-file, md5 sums from a record-API JSON)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import sys
import zipfile

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from _http_server import MediaServer  # noqa: E402

from ingest.__main__ import main  # noqa: E402
from ingest.decode import encode_wav  # noqa: E402
from ingest.download import DownloadError, SplitZip, extract, fetch, split_parts  # noqa: E402
from ingest.sources.fsd50k import expected_files, parse_zenodo_files, zenodo_api_url  # noqa: E402
from shards.reader import decode_members, iter_tar_samples  # noqa: E402

VOCAB = ("0,Electric_guitar,/m/02sgy\n1,Guitar,/m/0342h\n2,Musical_instrument,/m/04szw\n3,Music,/m/04rlf\n"
         "4,Bark,/m/05tny_\n5,Dog,/m/0bt9lr\n6,Animal,/m/0jbk\n")
GUITAR = ('"Electric_guitar,Guitar,Musical_instrument,Music"', '"/m/02sgy,/m/0342h,/m/04szw,/m/04rlf"')
DOG = ('"Bark,Dog,Animal"', '"/m/05tny_,/m/0bt9lr,/m/0jbk"')
DEV = {101: (GUITAR, "train"), 102: (DOG, "train"), 103: (GUITAR, "train"), 104: (DOG, "train"),
       105: (GUITAR, "val"), 106: (DOG, "val")}
EVAL = {201: GUITAR, 202: DOG}


# -- a split zip as Info-ZIP writes it (zip -s): spanning signature, per-part offsets, EOCD in .zip
_CDH = struct.Struct("<4sHHHHHHIIIHHHHHII")


def make_split_zip(files: dict[str, bytes], n_parts: int, zip64: bool = False) -> list[bytes]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data,
                       compress_type=zipfile.ZIP_STORED if name.endswith(".wav") else zipfile.ZIP_DEFLATED)
    raw = buf.getvalue()
    e = raw.rfind(b"PK\x05\x06")
    _, _, _, _, n, cd_size, cd_off, _ = struct.unpack_from("<4sHHHHIIH", raw, e)
    local = b"PK\x07\x08" + raw[:cd_off]
    chunk = -(-len(local) // n_parts)
    pieces = [local[i * chunk:(i + 1) * chunk] for i in range(n_parts)]
    assert all(pieces), "too many parts for this little data"
    cd, pos = bytearray(), cd_off
    for _ in range(n):
        f = list(_CDH.unpack_from(raw, pos))
        nlen, xlen, clen = f[10], f[11], f[12]
        name = raw[pos + _CDH.size:pos + _CDH.size + nlen]
        comment = raw[pos + _CDH.size + nlen + xlen:pos + _CDH.size + nlen + xlen + clen]
        pos += _CDH.size + nlen + xlen + clen
        disk, rel = divmod(f[16] + 4, chunk)
        extra = b""
        if zip64:
            extra = struct.pack("<HHQQQI", 1, 28, f[9], f[8], rel, disk)
            f[8] = f[9] = rel = 0xFFFFFFFF
            disk = 0xFFFF
        f[11], f[12], f[13], f[16] = len(extra), 0, disk, rel
        cd += _CDH.pack(*f) + name + extra
        del comment
    last = n_parts - 1
    cd_rel = len(pieces[-1])
    tail = bytes(cd)
    if zip64:
        eocd64_rel = cd_rel + len(cd)
        tail += struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, last, last, n, n, len(cd), cd_rel)
        tail += struct.pack("<4sIQI", b"PK\x06\x07", last, eocd64_rel, n_parts)
        tail += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        tail += struct.pack("<4sHHHHIIH", b"PK\x05\x06", last, last, n, n, len(cd), cd_rel, 0)
    pieces[-1] += tail
    return pieces


def part_names(stem: str, n: int) -> list[str]:
    return [f"{stem}.z{i:02d}" for i in range(1, n)] + [f"{stem}.zip"]


def _wav_bytes(seconds: float, seed: int) -> bytes:
    import tempfile
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "a.wav")
        encode_wav(p, (0.1 * rng.standard_normal(int(seconds * 44100))).astype(np.float32), 44100)
        with open(p, "rb") as f:
            return f.read()


@pytest.fixture(scope="module")
def fsd_files():
    dev = {f"FSD50K.dev_audio/{k}.wav": _wav_bytes(0.4 + 0.1 * i, k) for i, k in enumerate(DEV)}
    ev = {f"FSD50K.eval_audio/{k}.wav": _wav_bytes(0.5, k) for k in EVAL}
    dev_csv = "fname,labels,mids,split\n" + "".join(f"{k},{lab},{mid},{s}\n" for k, ((lab, mid), s) in DEV.items())
    eval_csv = "fname,labels,mids\n" + "".join(f"{k},{lab},{mid}\n" for k, (lab, mid) in EVAL.items())
    gt = {"FSD50K.ground_truth/dev.csv": dev_csv.encode(), "FSD50K.ground_truth/eval.csv": eval_csv.encode(),
          "FSD50K.ground_truth/vocabulary.csv": VOCAB.encode()}
    meta = {"FSD50K.metadata/dev_clips_info_FSD50K.json": b'{"101": {"title": "guitar"}}'}
    archives = {}
    for stem, files, n in (("FSD50K.dev_audio", dev, 6), ("FSD50K.eval_audio", ev, 2),
                           ("FSD50K.ground_truth", gt, 1), ("FSD50K.metadata", meta, 1)):
        archives.update(zip(part_names(stem, n), make_split_zip(files, n)))
    assert sorted(archives) == sorted(expected_files())
    return {"archives": archives, "contents": {**dev, **ev, **gt, **meta}}


def serve_zenodo(server: MediaServer, archives: dict[str, bytes], bad_md5: str | None = None) -> str:
    files = []
    for name, data in archives.items():
        server.add(f"/records/4060432/files/{name}", data, "application/octet-stream")
        md5 = hashlib.md5(data).hexdigest() if name != bad_md5 else "0" * 32
        files.append({"key": name, "size": len(data), "checksum": f"md5:{md5}"})
    server.add("/api/records/4060432", json.dumps({"id": 4060432, "files": files}).encode(), "application/json")
    return server.base + "/records/4060432/files/"


def test_zenodo_helpers():
    assert zenodo_api_url("https://zenodo.org/records/4060432/files/") == "https://zenodo.org/api/records/4060432"
    assert zenodo_api_url("http://127.0.0.1:8000/records/4060432/files") == "http://127.0.0.1:8000/api/records/4060432"
    old = {"files": [{"key": "a.zip", "checksum": "md5:ABC", "size": 3}]}
    new = {"files": {"entries": {"a.zip": {"key": "a.zip", "checksum": "md5:abc", "size": 3}}}}
    assert parse_zenodo_files(old) == parse_zenodo_files(new) == {"a.zip": {"md5": "abc", "size": 3}}


def test_download_extract_and_ingest(tmp_path, fsd_files):
    root, out = tmp_path / "fsd", tmp_path / "out"
    with MediaServer() as server:
        url = serve_zenodo(server, fsd_files["archives"])
        dropped = "/records/4060432/files/FSD50K.dev_audio.z03"
        server.routes[dropped].drop_once_at = len(fsd_files["archives"]["FSD50K.dev_audio.z03"]) // 2
        argv = ["fsd50k", "--root", str(root), "--download", "--zenodo-url", url, "--download-backoff", "0.01",
                "--out", str(out), "--no-progress", "--shard-size", "3"]
        assert main(argv) == 0
        # the dropped transfer was resumed with a Range request from where it stopped
        assert server.hits[dropped] == 2
        drop = server.routes[dropped].drop_once_at
        starts = [int(r.split("=")[1].rstrip("-")) for p, r in server.ranges if p == dropped]
        assert len(starts) == 1 and 0 < starts[0] <= drop
        for name, data in fsd_files["contents"].items():
            assert (root / name).read_bytes() == data, name
        for split, keys in (("train", {"101", "102", "103", "104"}), ("val", {"105", "106"}), ("eval", {"201", "202"})):
            got = {}
            for f in sorted((out / split).glob("*.tar")):
                for key, members in iter_tar_samples(str(f)):
                    got[key] = decode_members(key, members)
            assert set(got) == keys, split
            for key, (mel, meta) in got.items():
                want = GUITAR if int(key) in (101, 103, 105, 201) else DOG
                assert meta["labels"] == want[1].strip('"').split(",")
                assert meta["fsd50k_labels"] == want[0].strip('"').split(",")
                assert mel.shape[1] == meta["frames"] == 1 + int(round(meta["duration"] * 16000)) // 160
            man = json.loads((out / split / "manifest.json").read_text())
            assert man["labels"]["display_names"]["/m/02sgy"] == "Electric guitar"
            assert man["fsd50k"]["labels"].startswith("AudioSet MIDs")
        # rerun: everything is extracted and verified -> no archive is requested again
        before = sum(server.hits.values())
        assert main(argv) == 0
        assert sum(server.hits.values()) == before


def test_checksum_mismatch_and_missing_sums(tmp_path, fsd_files, capsys):
    with MediaServer() as server:
        url = serve_zenodo(server, fsd_files["archives"], bad_md5="FSD50K.eval_audio.z01")
        rc = main(["fsd50k", "--root", str(tmp_path / "r"), "--download", "--zenodo-url", url,
                   "--download-backoff", "0.01", "--out", str(tmp_path / "o"), "--no-progress"])
        assert rc == 2
        err = capsys.readouterr().err
        assert "md5" in err and "FSD50K.eval_audio.z01" in err and "Traceback" not in err
        assert not (tmp_path / "r" / "archives" / "FSD50K.eval_audio.z01").exists()
        assert (tmp_path / "r" / "archives" / "FSD50K.dev_audio.zip").exists()  # verified ones stay
        rc = main(["fsd50k", "--root", str(tmp_path / "r2"), "--download", "--zenodo-url", server.base + "/nothing/",
                   "--out", str(tmp_path / "o2"), "--no-progress"])
        assert rc == 2 and "--md5-file" in capsys.readouterr().err
    rc = main(["fsd50k", "--root", str(tmp_path / "empty"), "--out", str(tmp_path / "o3"), "--no-progress"])
    assert rc == 2 and "--download" in capsys.readouterr().err


def test_split_zip_reader_zip64_and_damage(tmp_path):
    rng = np.random.default_rng(0)
    files = {"d/a.wav": rng.bytes(50000), "d/b.txt": b"hello " * 5000, "d/sub/c.wav": rng.bytes(20000)}
    for zip64 in (False, True):
        d = tmp_path / f"z{int(zip64)}"
        d.mkdir()
        for name, data in zip(part_names("x", 4), make_split_zip(files, 4, zip64=zip64)):
            (d / name).write_bytes(data)
        parts = split_parts(str(d / "x.zip"))
        assert [os.path.basename(p) for p in parts] == ["x.z01", "x.z02", "x.z03", "x.zip"]
        extract(parts, str(d / "out"))
        for name, data in files.items():
            assert (d / "out" / name).read_bytes() == data
    # a missing part and a flipped byte give one clear error each
    with pytest.raises(DownloadError, match="parts"):
        SplitZip([str(d / "x.z01"), str(d / "x.z03"), str(d / "x.zip")])
    raw = bytearray((d / "x.z02").read_bytes())
    raw[1000] ^= 0xFF
    (d / "x.z02").write_bytes(bytes(raw))
    with pytest.raises(DownloadError, match="CRC"):
        extract(parts, str(d / "out2"))
    assert not list((d / "out2").rglob("*.extracting"))


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt", "C:/evil.txt", "a\\..\\..\\evil.txt"])
def test_extract_refuses_path_traversal(tmp_path, name):
    (tmp_path / "t.zip").write_bytes(make_split_zip({"ok.txt": b"fine", name: b"evil"}, 1)[0])
    with pytest.raises(DownloadError, match="unsafe"):
        extract([str(tmp_path / "t.zip")], str(tmp_path / "root"))
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "root" / "ok.txt").exists()


def test_extract_refuses_symlinks(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        zi = zipfile.ZipInfo("link")
        zi.create_system = 3
        zi.external_attr = (0o120777 << 16)
        z.writestr(zi, "/etc/passwd")
    (tmp_path / "s.zip").write_bytes(buf.getvalue())
    with pytest.raises(DownloadError, match="symlink"):
        extract([str(tmp_path / "s.zip")], str(tmp_path / "root"))


def test_fetch_resume_restart_and_checksum(tmp_path):
    data = np.random.default_rng(3).bytes(300_000)
    md5 = hashlib.md5(data).hexdigest()
    with MediaServer() as server:
        server.add("/f.bin", data, drop_once_at=123_457)
        server.add("/noranges.bin", data, ranges=False)
        server.add("/flaky.bin", data, fail_first=2, fail_status=503)
        server.add("/gone.bin", status=404)
        p = str(tmp_path / "f.bin")
        fetch(server.url("/f.bin"), p, md5=md5, backoff=0.01)
        assert open(p, "rb").read() == data and len(server.ranges) == 1
        assert server.ranges[0][0] == "/f.bin" and 100_000 < int(server.ranges[0][1][6:-1]) <= 123_457
        # a partial file from an earlier run is resumed; a server without ranges restarts it
        q = str(tmp_path / "n.bin")
        with open(q + ".part", "wb") as f:
            f.write(data[:1000])
        fetch(server.url("/noranges.bin"), q, md5=md5, backoff=0.01)
        assert open(q, "rb").read() == data
        fetch(server.url("/flaky.bin"), str(tmp_path / "fl.bin"), md5=md5, backoff=0.01)
        assert server.hits["/flaky.bin"] == 3
        with pytest.raises(DownloadError, match="404"):
            fetch(server.url("/gone.bin"), str(tmp_path / "g.bin"), backoff=0.01)
        with pytest.raises(DownloadError, match="md5"):
            fetch(server.url("/f.bin"), str(tmp_path / "bad.bin"), md5="0" * 32, backoff=0.01)
        n = server.hits["/f.bin"]
        fetch(server.url("/f.bin"), p, md5=md5)  # verified already: no request
        assert server.hits["/f.bin"] == n
