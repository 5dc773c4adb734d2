"""Cost of the AudioSet downloader layer, offline: clips/s per worker through yt-dlp + ffmpeg.

A local HTTP server (tests/_http_server.py) serves 10-s clips (m4a/aac and webm/opus, like
YouTube's audio formats); ``--url-template`` points yt-dlp's generic extractor at it, so each clip
costs what it costs on the real path minus the network: yt-dlp extraction, the ffmpeg range fetch,
decoding, log-mel and shard writing.  Results (merged into bench/results/ingest.json):

* ``audioset_clips_per_s_per_worker`` -- ``python -m ingest audioset`` with one worker, end to end;
* ``audioset_fetch_clips_per_s_per_worker`` -- the download + decode step alone (``AudioSetSource.load``);
* ``audioset_fetch_ms_per_clip`` -- the same as milliseconds per clip.

The real rate is bounded by ``--rate-limit`` and YouTube, not by this; the point is to see the
local overhead of the downloader next to the decode-and-mel cost of bench/bench_ingest.py.

    python bench/bench_audioset.py [--clips 40] [--out bench/results/ingest.json]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from _http_server import MediaServer  # noqa: E402

from ingest.decode import encode_wav, transcode  # noqa: E402
from ingest.engine import IngestConfig, run_ingest  # noqa: E402
from ingest.sources.audioset import AudioSetSource  # noqa: E402
from shards.atomic import atomic_write_json  # noqa: E402


def make_media(d: str) -> dict[str, tuple[bytes, str]]:
    sr = 44100
    t = np.arange(10 * sr) / sr
    rng = np.random.default_rng(0)
    w = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    encode_wav(os.path.join(d, "a.wav"), w, sr)
    transcode(os.path.join(d, "a.wav"), os.path.join(d, "a.m4a"), ["-c:a", "aac", "-b:a", "128k"])
    transcode(os.path.join(d, "a.wav"), os.path.join(d, "a.webm"), ["-c:a", "libopus", "-b:a", "128k"])
    return {ext: (open(os.path.join(d, f"a.{ext}"), "rb").read(), ct)
            for ext, ct in (("m4a", "audio/mp4"), ("webm", "audio/webm"))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "ingest.json"))
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    tmp = tempfile.mkdtemp(prefix="bench-audioset-")
    try:
        media = make_media(tmp)
        seg = os.path.join(tmp, "bench_segments.csv")
        ids = [f"bench{i:04d}_{'m' if i % 2 else 'w'}x"[:11].ljust(11, "x") for i in range(a.clips)]
        with open(seg, "w") as f:
            f.write("# bench\n# num_ytids=0\n# YTID, start_seconds, end_seconds, positive_labels\n")
            for ytid in ids:
                f.write(f'{ytid}, 0.000, 10.000, "/m/04rlf"\n')
        with MediaServer() as server:
            for i, ytid in enumerate(ids):
                data, ct = media["m4a" if i % 2 else "webm"]
                server.add(f"/v/{ytid}", data, ct)
            kw = dict(segments=[(seg, "bench")], url_template=server.base + "/v/{ytid}", rate_limit="0",
                      retries=0, backoff=0.01)

            # 1) download + decode only (one process, warm-up clip excluded)
            src = AudioSetSource(out=os.path.join(tmp, "fetch"), **kw)
            items = src.items()
            src.load(items[0], 16000)
            t0 = time.perf_counter()
            for it in items[1:]:
                src.load(it, 16000)
            fetch_s = (time.perf_counter() - t0) / max(1, len(items) - 1)

            # 2) the whole ingest path with one worker
            out = os.path.join(tmp, "ingest")
            src2 = AudioSetSource(out=out, **kw)
            t0 = time.perf_counter()
            summary = run_ingest(src2, IngestConfig(out=out, workers=1, shard_size="1000", progress=False))
            wall = time.perf_counter() - t0
        assert summary["ingested"] == a.clips, summary
        res = {
            "audioset_clips_per_s_per_worker": round(a.clips / wall, 3),
            "audioset_fetch_clips_per_s_per_worker": round(1.0 / fetch_s, 3),
            "audioset_fetch_ms_per_clip": round(fetch_s * 1000, 1),
            "audioset_bench": {"clips": a.clips, "clip_seconds": 10.0, "formats": ["m4a/aac 128k", "webm/opus 128k"],
                               "server": "local HTTP (127.0.0.1), yt-dlp generic extractor + ffmpeg range fetch",
                               "cpu_count": os.cpu_count()},
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results = {}
    if os.path.exists(a.out):
        try:
            with open(a.out) as f:
                results = json.load(f)
        except (OSError, json.JSONDecodeError):
            results = {}
    results.update(res)
    atomic_write_json(a.out, results)
    os.chmod(a.out, 0o644)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
