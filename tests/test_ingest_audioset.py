"""AudioSet source: CSV traps, failure classes, retries, ledger, reruns -- offline, real yt-dlp + ffmpeg.

A local HTTP server serves media in several containers/codecs and error responses; ``--url-template``
points yt-dlp's generic extractor at it, so the whole download path runs without the internet.
"""
from __future__ import annotations

import csv
import json
import multiprocessing as mp
import os
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from _http_server import MediaServer  # noqa: E402

from ingest.__main__ import main  # noqa: E402
from ingest.decode import encode_wav, transcode  # noqa: E402
from ingest.ledger import LedgerWriter  # noqa: E402
from ingest.ledger import load as load_ledger
from ingest.ratelimit import SharedRateLimiter, parse_rate  # noqa: E402
from ingest.sources.audioset import AudioSetSource, parse_segments, read_class_labels, segment_key, split_from_filename, split_key  # noqa: E402
from ingest.ytdl import classify  # noqa: E402
from shards.reader import decode_members, iter_tar_samples  # noqa: E402

HEADER = ("# Segments csv created Sun Mar  5 10:54:31 2017\n"
          "# num_ytids=12, num_segs=12, num_unique_labels=4, num_positive_labels=14\n"
          "# YTID, start_seconds, end_seconds, positive_labels\n")

LABELS_CSV = ('index,mid,display_name\n'
              '0,/m/09x0r,"Speech"\n'
              '1,/m/04rlf,"Music"\n'
              '2,/m/0k4j,"Car"\n'
              '3,/t/dd00003,"Accelerating, revving, vroom"\n')


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """3-s clips (tone + noise, 44.1 kHz) as wav, webm/opus, m4a/aac and mp3."""
    d = tmp_path_factory.mktemp("media")
    sr = 44100
    t = np.arange(3 * sr) / sr
    rng = np.random.default_rng(0)
    w = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    encode_wav(str(d / "a.wav"), w, sr)
    transcode(str(d / "a.wav"), str(d / "a.webm"), ["-c:a", "libopus", "-b:a", "32k"])
    transcode(str(d / "a.wav"), str(d / "a.m4a"), ["-c:a", "aac", "-b:a", "48k"])
    transcode(str(d / "a.wav"), str(d / "a.mp3"), ["-c:a", "libmp3lame", "-b:a", "48k"])
    encode_wav(str(d / "zero.wav"), np.zeros(3 * 16000, np.float32), 16000)
    return {ext: (d / f"a.{ext}").read_bytes() for ext in ("wav", "webm", "m4a", "mp3")} | {
        "zero": (d / "zero.wav").read_bytes()}


CT = {"wav": "audio/wav", "webm": "audio/webm", "m4a": "audio/mp4", "mp3": "audio/mpeg"}

# ytid -> (segment, route); IDs deliberately start with "-" and contain "_" like real ones
CASES = {
    "-webm_Opus1": ((0.5, 2.5), dict(ext="webm")),
    "m4a_Aac_001": ((1.0, 3.0), dict(ext="m4a")),
    "mp3Lame0001": ((0.0, 2.0), dict(ext="mp3")),
    "wavPcm_0001": ((0.25, 1.75), dict(ext="wav")),          # a segment shorter than 10 s
    "-rate429x_1": ((0.5, 2.5), dict(ext="m4a", fail_first=2, fail_status=429)),
    "server503_1": ((0.5, 2.5), dict(ext="webm", fail_first=1, fail_status=503)),
    "notFound404": ((0.0, 2.0), dict(ext="m4a", status=404)),
    "forbidden03": ((0.0, 2.0), dict(ext="m4a", status=403)),
    "truncated01": ((0.5, 2.5), dict(ext="m4a", truncate_at="half")),
    "notAudio001": ((0.0, 2.0), dict(ext="notaudio")),
    "silentClip1": ((0.0, 2.0), dict(ext="zero")),
    "tooLong0001": ((0.0, 10.0), dict(ext="mp3")),          # the file is only 3 s long
}
OK = {"-webm_Opus1", "m4a_Aac_001", "mp3Lame0001", "wavPcm_0001", "-rate429x_1", "server503_1"}
EXPECTED_FAIL = {  # ytid -> (reason_class, permanent)
    "notFound404": ("unavailable", True),
    "forbidden03": ("http_403", False),
    "truncated01": ("connection", False),
    "notAudio001": ("undecodable", True),
    "silentClip1": ("silent", True),
    "tooLong0001": ("bad_duration", True),
}
LABELS = {"-webm_Opus1": ["/m/09x0r", "/t/dd00003"], "m4a_Aac_001": ["/m/04rlf"]}


def serve_cases(server: MediaServer, media: dict, cases=CASES) -> None:
    for ytid, (_, spec) in cases.items():
        spec = dict(spec)
        ext = spec.pop("ext")
        if ext == "notaudio":
            data, ct = np.random.default_rng(1).bytes(30000), "audio/mp4"
        elif ext == "zero":
            data, ct = media["zero"], "audio/wav"
        else:
            data, ct = media[ext], CT[ext]
        if spec.get("truncate_at") == "half":
            spec["truncate_at"] = len(data) // 2
        server.add(f"/v/{ytid}", data, ct, **spec)


def write_segments(path, cases=CASES, extra_rows: str = "") -> None:
    rows = []
    for ytid, ((s, e), _) in cases.items():
        labs = ",".join(LABELS.get(ytid, ["/m/0k4j"]))
        rows.append(f'{ytid}, {s:.3f}, {e:.3f}, "{labs}"\n')
    path.write_text(HEADER + "".join(rows) + extra_rows)


def run_cli(tmp_path, server, seg, *extra, workers=1) -> dict:
    out = tmp_path / "out"
    argv = ["audioset", "--segments", str(seg), "--labels", str(tmp_path / "labels.csv"),
            "--url-template", server.base + "/v/{ytid}", "--retries", "2", "--backoff", "0.01",
            "--rate-limit", "0", "--socket-timeout", "5", "--shard-size", "4", "--workers", str(workers),
            "--out", str(out), "--no-progress", *extra]
    assert main(argv) == 0
    return out


def read_split(d):
    samples = {}
    for name in sorted(os.listdir(d)):
        if name.endswith(".tar"):
            for key, members in iter_tar_samples(os.path.join(d, name)):
                mel, meta = decode_members(key, members)
                samples[key] = (name, mel, meta, members)
    return samples


# -- parsing ---------------------------------------------------------------------------------
def test_parse_segments_csv_traps(tmp_path):
    p = tmp_path / "balanced_train_segments.csv"
    p.write_text(HEADER
                 + '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"\n'      # leading "-"
                 + '_a_b_c_d_e_, 0.000, 7.520, "/m/04rlf"\n'                   # "_" everywhere, short
                 + '#NAME?, 30.000, 40.000, "/m/09x0r"\n'                      # spreadsheet-mangled ID
                 + 'tooShortId, 0.000, 10.000, "/m/09x0r"\n'                   # 10 characters
                 + 'abcdefghijk, 20.000, 10.000, "/m/09x0r"\n'                 # end before start
                 + 'abcdefghijk, 1.000, 11.000, "not a label"\n'
                 + 'abcdefghijk, 1.000, 11.000, /m/09x0r,/m/04rlf\n'           # unquoted labels
                 + "\n")
    r = parse_segments(str(p))
    assert [(s.ytid, s.start, s.end, s.labels) for s in r.segments] == [
        ("--PJHxphWEs", 30.0, 40.0, ["/m/09x0r", "/t/dd00088"]),
        ("_a_b_c_d_e_", 0.0, 7.52, ["/m/04rlf"]),
        ("abcdefghijk", 1.0, 11.0, ["/m/09x0r", "/m/04rlf"]),
    ]
    assert dict(r.rejected) == {"bad_ytid": 2, "bad_time": 1, "bad_labels": 1}
    assert r.declared == 12 and r.rows == 7
    assert split_from_filename(str(p)) == "balanced_train"
    assert split_from_filename("/x/eval_segments.csv") == "eval"
    for ytid in ("--PJHxphWEs", "_a_b_c_d_e_", "-_-_-_-_-_-"):
        key = segment_key(ytid, 7.52)
        assert key == f"{ytid}_7520" and split_key(key) == (ytid, 7520)
    lab = tmp_path / "labels.csv"
    lab.write_text(LABELS_CSV)
    assert read_class_labels(str(lab))["/t/dd00003"] == "Accelerating, revving, vroom"


def test_classify_messages():
    cases = {
        "ERROR: [youtube] x: Private video. Sign in if you've been granted access to this video": ("private", False),
        "ERROR: [youtube] x: Video unavailable. This video has been removed by the uploader": ("removed", False),
        "ERROR: [youtube] x: Video unavailable. This video is no longer available because the YouTube account "
        "associated with this video has been terminated.": ("removed", False),
        "ERROR: [youtube] x: Video unavailable": ("unavailable", False),
        "ERROR: [youtube] x: Join this channel to get access to members-only content like this video": (
            "members_only", False),
        "ERROR: [youtube] x: Sign in to confirm your age. This video may be inappropriate for some users.": (
            "age_restricted", False),
        "ERROR: [youtube] x: Sign in to confirm you\u2019re not a bot. Use --cookies-from-browser": ("bot_check", True),
        "ERROR: [youtube] x: Video unavailable. The uploader has not made this video available in your country":
            ("geo_blocked", False),
        "ERROR: [youtube] x: Requested format is not available. Use --list-formats": ("no_audio", False),
        "ERROR: unable to download video data: HTTP Error 429: Too Many Requests": ("http_429", True),
        "ERROR: unable to download video data: HTTP Error 503: Service Unavailable": ("http_5xx", True),
        "ERROR: [generic] x: Unable to download webpage: <urlopen error timed out>": ("timeout", True),
        "ERROR: [Errno 104] Connection reset by peer": ("connection", True),
        "something nobody has seen before": ("unknown", True),
    }
    for text, want in cases.items():
        assert classify(text) == want, text
    assert classify("whatever", 404) == ("unavailable", False)
    assert classify("whatever", 502) == ("http_5xx", True)


# -- end to end ------------------------------------------------------------------------------
def test_audioset_end_to_end_and_rerun(tmp_path, media):
    (tmp_path / "labels.csv").write_text(LABELS_CSV)
    seg = tmp_path / "eval_segments.csv"
    write_segments(seg, extra_rows='#NAME?, 0.000, 10.000, "/m/09x0r"\n')
    with MediaServer() as server:
        serve_cases(server, media)
        out = run_cli(tmp_path, server, seg, workers=2)
        d = out / "eval"
        samples = read_split(d)
        ok_keys = {segment_key(y, CASES[y][0][0]) for y in OK}
        assert set(samples) == ok_keys
        for key, (_, mel, meta, _) in samples.items():
            ytid, ms = split_key(key)
            s, e = CASES[ytid][0]
            assert meta["source_id"] == ytid and meta["start"] == s
            assert abs(meta["duration"] - (e - s)) < 0.1, (key, meta["duration"])
            assert mel.shape == (64, meta["frames"]) and meta["frames"] == 1 + int(round(meta["duration"] * 16000)) // 160
            assert meta["labels"] == LABELS.get(ytid, ["/m/0k4j"])
            assert meta["origin"] == server.base + "/v/" + ytid
        man = json.loads((d / "manifest.json").read_text())
        assert man["labels"]["display_names"]["/t/dd00003"] == "Accelerating, revving, vroom"
        fails = {json.loads(line)["key"]: json.loads(line) for line in (d / "failures.jsonl").read_text().splitlines()}
        assert {split_key(k)[0] for k in fails} == set(EXPECTED_FAIL)
        for key, f in fails.items():
            reason, permanent = EXPECTED_FAIL[split_key(key)[0]]
            assert (f["reason_class"], f["permanent"]) == (reason, permanent), f
            assert f["attempts"] == (1 if permanent else 3), f  # transient: 1 + --retries 2
        # retried until success; 429 twice then 200
        assert server.hits["/v/-rate429x_1"] >= 3 and server.hits["/v/forbidden03"] == 3
        assert server.hits["/v/notFound404"] == 1
        rep = man["audioset"]
        assert rep["attempted"] == len(CASES) and rep["ingested"] == len(OK)
        assert rep["permanently_unavailable"] == 4 and rep["transient_failures"] == 2
        assert rep["permanent_by_reason"] == {"bad_duration": 1, "silent": 1, "undecodable": 1, "unavailable": 1}
        assert rep["rejected_rows"] == {"bad_ytid": 1}
        assert abs(rep["hours"] - man["totals"]["hours"]) < 1e-9 and rep["hours"] > 0
        led = load_ledger(str(out / ".ledger"))
        assert {k: v["status"] for k, v in led.items()} == {
            **{k: "ok" for k in ok_keys},
            **{segment_key(y, CASES[y][0][0]): ("permanent" if p else "transient") for y, (_, p) in EXPECTED_FAIL.items()}}
        assert all(len(v["checked"]) == 10 for v in led.values())
        assert led[segment_key("-rate429x_1", 0.5)]["attempts"] == 3
        with open(d / "missing.csv") as f:
            missing = list(csv.DictReader(f))
        assert {(r["YTID"], r["status"]) for r in missing} == {
            (y, "permanent" if p else "transient") for y, (_, p) in EXPECTED_FAIL.items()}
        assert (out / "ledger.jsonl").exists() and not os.listdir(out / ".tmp")

        # rerun: settled clips are not requested again; the shards holding transient failures are
        # redone, keep their keys, and copy the clips they already hold
        shard_of = {k: v[0] for k, v in samples.items()}
        hits_before = dict(server.hits)
        server.routes["/v/forbidden03"].status = 200            # the 403 clears up
        server.routes["/v/truncated01"].truncate_at = None      # and the connection is fine now
        run_cli(tmp_path, server, seg)
        for ytid in list(OK) + ["notFound404", "notAudio001", "silentClip1", "tooLong0001"]:
            assert server.hits[f"/v/{ytid}"] == hits_before[f"/v/{ytid}"], ytid
        assert server.hits["/v/forbidden03"] > hits_before["/v/forbidden03"]
        samples2 = read_split(d)
        assert set(samples2) == ok_keys | {segment_key("forbidden03", 0.0), segment_key("truncated01", 0.5)}
        for k, (name, _, _, members) in samples.items():
            assert samples2[k][0] == shard_of[k] and samples2[k][3] == members  # same shard, same bytes
        man2 = json.loads((d / "manifest.json").read_text())
        assert man2["audioset"]["transient_failures"] == 0 and man2["audioset"]["ingested"] == len(OK) + 2
        fails2 = [json.loads(line) for line in (d / "failures.jsonl").read_text().splitlines()]
        # silentClip1 shares its shard with truncated01, so that shard was redone: the settled
        # failure came from the ledger without a request
        sc = [f for f in fails2 if f["key"] == segment_key("silentClip1", 0.0)][0]
        assert sc["reason_class"] == "silent" and "ledger: checked" in sc["reason"] and sc["attempts"] == 1
        assert sc["permanent"] and shard_of[segment_key("wavPcm_0001", 0.25)] == "audioset-eval-000002.tar"
        led2 = load_ledger(str(out / ".ledger"))
        assert led2[segment_key("forbidden03", 0.0)]["status"] == "ok"
        assert led2[segment_key("notFound404", 0.0)]["t"] == led[segment_key("notFound404", 0.0)]["t"]


def test_fraction_limit_and_options(tmp_path, media):
    (tmp_path / "labels.csv").write_text(LABELS_CSV)
    cases = {f"clip{i:03d}_abc": ((0.0, 1.0), dict(ext="mp3")) for i in range(10)}
    seg = tmp_path / "balanced_train_segments.csv"
    write_segments(seg, cases)
    src = lambda f, s: AudioSetSource(segments=[(str(seg), "balanced_train")], out=str(tmp_path / "o"),  # noqa: E731
                                      fraction=f, seed=s)
    a = [it.key for it in src(0.3, 1).items()]
    assert len(a) == 3 and a == [it.key for it in src(0.3, 1).items()]
    assert {tuple(sorted(it.key for it in src(0.3, s).items())) for s in range(6)} != {tuple(sorted(a))}
    with pytest.raises(ValueError):
        src(0.0, 1)
    with pytest.raises(ValueError, match="ytid"):
        AudioSetSource(segments=[(str(seg), "x")], out=str(tmp_path / "o"), url_template="http://mirror/x.m4a")
    with MediaServer() as server:
        serve_cases(server, media, cases)
        out = run_cli(tmp_path, server, seg, "--fraction", "0.5", "--seed", "3", "--limit", "2", "--rate-limit", "3600/h")
        samples = read_split(out / "balanced_train")
        expected = sorted(it.key for it in src(0.5, 3).items())[:2]
        assert sorted(samples) == expected
        assert sum(server.hits.values()) >= 2


def _acquire(path, rate, n, q):
    lim = SharedRateLimiter(path, rate)
    for _ in range(n):
        waited = lim.acquire()
        q.put((lim.last_slot, waited))


def test_rate_limiter_shared_across_processes(tmp_path):
    assert parse_rate("600/h") == pytest.approx(600 / 3600) and parse_rate("2/s") == 2.0 and parse_rate("0") == 0
    with pytest.raises(ValueError):
        parse_rate("fast")
    path = str(tmp_path / "rl" / "job-0")
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    ps = [ctx.Process(target=_acquire, args=(path, 20.0, 4, q)) for _ in range(3)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(20)
    got = [q.get(timeout=5) for _ in range(12)]
    # The slots the three processes reserved under the shared lock are >= 1/rate apart.  (The
    # reservations, not wall-clock stamps taken after the sleep: a process descheduled on a busy
    # machine would make those bunch up without the limiter being wrong.)
    gaps = np.diff(sorted(slot for slot, _ in got))
    assert gaps.min() >= 0.05 - 2e-6, gaps  # 20/s: 50 ms, less the file's 1-us rounding
    assert any(w > 0 for _, w in got)  # a burst of 12 at 20/s: some had to wait their turn
    lim = SharedRateLimiter(path, 0.0)
    lim.penalize(0.3)
    t = time.time()
    lim.acquire()
    assert time.time() - t > 0.2


def test_ledger_many_writers(tmp_path):
    d = str(tmp_path / "ledger")
    w1, w2 = LedgerWriter(d), LedgerWriter(d)
    w1.append({"key": "a_0", "status": "transient", "reason": "http_429"})
    w2.append({"key": "b_0", "status": "permanent", "reason": "private"})
    time.sleep(0.01)
    w2.append({"key": "a_0", "status": "ok"})
    with open(w1.path, "ab") as f:
        f.write(b'{"key": "c_0", "status": "ok"')  # torn line of a killed process
    led = load_ledger(d)
    assert {k: v["status"] for k, v in led.items()} == {"a_0": "ok", "b_0": "permanent"}
    assert len(os.listdir(d)) == 2 and w1.path != w2.path


def test_whole_file_fallback_when_range_fetch_fails(tmp_path, media):
    from ingest.ytdl import ClipFailure, ClipFetcher, FetchConfig

    broken_ffmpeg = {"external_downloader_args": {"ffmpeg_i": ["-no_such_option_melstream", "1"]}}
    with MediaServer() as server:
        server.add("/v/fallback001", media["m4a"], CT["m4a"])
        cfg = dict(url_template=server.base + "/v/{ytid}", socket_timeout=5, tmp_dir=str(tmp_path / "t"))
        f = ClipFetcher(FetchConfig(**cfg))
        wav, mode = f.fetch("fallback001", 0.5, 2.5)
        assert mode == "range" and abs(wav.size / 16000 - 2.0) < 0.1
        f = ClipFetcher(FetchConfig(**cfg, extra_params=broken_ffmpeg))
        wav2, mode = f.fetch("fallback001", 0.5, 2.5)  # the range fetch fails; the whole file is cut locally
        assert mode == "full" and abs(wav2.size / 16000 - 2.0) < 0.05
        assert not os.listdir(f.tmp)  # temp files are gone after every clip
        f = ClipFetcher(FetchConfig(**cfg, extra_params=broken_ffmpeg, fallback=False))
        with pytest.raises(ClipFailure) as e:
            f.fetch("fallback001", 0.5, 2.5)
        assert e.value.reason == "range_failed" and e.value.transient
        with pytest.raises(ValueError):
            f.fetch("../etc/pass", 0.0, 1.0)  # never an unvalidated ID in a URL
