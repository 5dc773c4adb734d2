"""`make bench-ingest`: ingest speed per worker and bytes per 10-s clip next to WAV and FLAC.

10-second demo clips (speech-like, instruments, noise textures, impacts) go through the real
folder ingest (ffmpeg decode + torchaudio log-mel + codec + tar write) with 1 and 2 workers.
FLAC goes through the batched decode (``DECODE_BATCH`` files per ffmpeg process) and, for
comparison, one ffmpeg process per file (``--decode-batch 1``).
Sizes compare each codec with 16-bit WAV and FLAC of the same audio; decode time per clip is
what the training reader pays.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np
from _common import merge_results, table

import shards
from ingest.decode import transcode
from ingest.demo import write_corpus
from ingest.engine import DECODE_BATCH, IngestConfig, run_ingest
from ingest.sources.folder import FolderSource


def checksum_cost(mels: list[np.ndarray], reps: int = 15, crop: int = 96) -> dict[str, float]:
    """Decode cost of the zstd content checksums (format version 2) against the same clips without them
    (version 1), f16chunks: full decodes (``shards verify``) and random 96-frame crops (what samplers
    read).  Each clip is decoded both ways back to back, ``reps`` rounds; a clip's time is its fastest
    round (robust to a busy machine), the figures the mean over clips."""
    rng = np.random.default_rng(0)
    enc = {ck: [shards.encode_mel(m, "f16chunks", checksum=ck)[:2] for m in mels] for ck in (False, True)}
    metas = {ck: [{"n_mels": m.shape[0], "frames": m.shape[1], **extra} for m, (_, extra) in zip(mels, enc[ck])]
             for ck in (False, True)}
    starts = [int(rng.integers(0, m.shape[1] - crop + 1)) for m in mels]
    best = {(ck, kind): np.full(len(mels), np.inf) for ck in (False, True) for kind in ("full", "crop")}
    clock = time.perf_counter
    for r in range(reps):
        for i, a in enumerate(starts):
            for ck in ((False, True) if r % 2 == 0 else (True, False)):
                data, meta = enc[ck][i][0], metas[ck][i]
                t0 = clock()
                shards.decode_mel(data, meta)
                t1 = clock()
                shards.decode_mel_frames(data, meta, a, a + crop)
                t2 = clock()
                best[(ck, "full")][i] = min(best[(ck, "full")][i], (t1 - t0) * 1e6)
                best[(ck, "crop")][i] = min(best[(ck, "crop")][i], (t2 - t1) * 1e6)
    best = {k: float(v.mean()) for k, v in best.items()}
    size = {ck: float(np.mean([len(d) for d, _ in enc[ck]])) for ck in (False, True)}
    out = {"full_us_v1": best[(False, "full")], "full_us_v2": best[(True, "full")],
           "crop_us_v1": best[(False, "crop")], "crop_us_v2": best[(True, "crop")],
           "bytes_v1": size[False], "bytes_v2": size[True]}
    print(f"\nzstd content checksums (format v2) vs none (v1), f16chunks, {len(mels)} clips, fastest of {reps} rounds per clip:")
    print(table([["full decode (verify)", out["full_us_v1"], out["full_us_v2"], out["full_us_v2"] / out["full_us_v1"]],
                 [f"{crop}-frame crop (samplers)", out["crop_us_v1"], out["crop_us_v2"], out["crop_us_v2"] / out["crop_us_v1"]],
                 ["bytes per clip", out["bytes_v1"], out["bytes_v2"], out["bytes_v2"] / out["bytes_v1"]]],
                ["per clip", "v1 (no checksum)", "v2 (checksum)", "v2 / v1"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=160)
    ap.add_argument("--checksum-only", action="store_true", help="only the checksum decode cost (one f16chunks ingest)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench_ingest_")
    try:
        audio = os.path.join(tmp, "audio")
        write_corpus(audio, seed=1, sizes={"pretrain": a.clips})
        src = os.path.join(audio, "pretrain")
        if a.checksum_only:
            out = os.path.join(tmp, "out_checksum")
            run_ingest(FolderSource(src, dataset="bench"), IngestConfig(out=out, shard_size="1000", progress=False))
            merge_results("ingest", {"checksum": checksum_cost([mel for mel, _ in shards.iter_dir(os.path.join(out, "train"))])})
            return
        wavs = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(src) for f in fs if f.endswith(".wav"))
        wav_kb = np.mean([os.path.getsize(p) for p in wavs]) / 1024
        flac_sizes = []
        for p in wavs[:12]:
            dst = os.path.join(tmp, os.path.basename(p) + ".flac")
            transcode(p, dst)
            flac_sizes.append(os.path.getsize(dst))
        flac_kb = float(np.mean(flac_sizes)) / 1024

        flac_dir = os.path.join(tmp, "flac")
        os.makedirs(flac_dir)
        for p in wavs:
            transcode(p, os.path.join(flac_dir, os.path.basename(p)[:-4] + ".flac"))
        speed, steady = {}, {}
        # (label, source folder, workers, decode batch); 2-worker figures include starting the worker processes,
        # ``steady`` leaves that out: clips of the shards finished after every worker finished its first one
        for label, folder, workers, batch in (("wav", src, 1, DECODE_BATCH), ("flac", flac_dir, 1, DECODE_BATCH),
                                              ("flac", flac_dir, 1, 1), ("wav", src, 2, DECODE_BATCH)):
            out = os.path.join(tmp, f"out_{label}_w{workers}_b{batch}")
            done: list[tuple[float, int]] = []
            t0 = time.perf_counter()
            s = run_ingest(FolderSource(folder, dataset="bench"), IngestConfig(out=out, shard_size=str(max(1, a.clips // 8)),
                                                                                workers=workers, progress=False,
                                                                                decode_batch=batch),
                           on_done=lambda r: done.append((time.perf_counter(), int(r["samples"]))))
            dt = time.perf_counter() - t0
            speed[(label, workers, batch)] = s["ingested"] / dt / workers
            if len(done) > workers:
                steady[(label, workers, batch)] = (sum(n for _, n in done[workers:]) / (done[-1][0] - done[workers - 1][0])
                                                   / workers)
        rows, sizes = [], {}
        for codec in ("f16", "f16planes", "f16chunks", "u8"):
            out = os.path.join(tmp, f"out_{codec}")
            run_ingest(FolderSource(src, dataset="bench"), IngestConfig(out=out, codec=codec, shard_size="1000", progress=False))
            d = os.path.join(out, "train")
            m = shards.read_manifest(d)
            members = [mem for p in shards.shard_paths(d) for _, mem in shards.iter_tar_samples(p)]
            kb = np.mean([len(mem["mel.npy.zst"]) for mem in members]) / 1024
            import json as _j
            metas = [_j.loads(mem["json"]) for mem in members]
            t0 = time.perf_counter()
            reps = 5
            for _ in range(reps):
                for mem, meta in zip(members, metas):
                    shards.decode_mel(mem["mel.npy.zst"], meta)
            dec_us = (time.perf_counter() - t0) / (reps * len(members)) * 1e6
            sizes[codec] = {"kb_per_clip": float(kb), "decode_us_per_clip": dec_us,
                            "max_abs_error": m["codec"]["max_abs_error"]}
            rows.append([codec, float(kb), dec_us, m["codec"]["max_abs_error"], "yes" if m["codec"]["lossless"] else "no"])
        print(f"ingest of {a.clips} x 10-s clips (decode + log-mel + codec + tar), byol_a preset, 64 mels")
        print(table([[f"{lab} ({'direct read' if lab == 'wav' else f'ffmpeg, {b} per process'})", w, v, v * 10]
                     for (lab, w, b), v in speed.items()],
                    ["input", "workers", "clips/s per worker", "x real time per worker"]))
        w2 = steady.get(("wav", 2, DECODE_BATCH))
        if w2:
            print(f"\nWAV, 2 workers after both started: {w2:.1f} clips/s per worker "
                  f"({speed[('wav', 2, DECODE_BATCH)]:.1f} counting the start of the worker processes)")
        flac, flac1 = speed[("flac", 1, DECODE_BATCH)], speed[("flac", 1, 1)]
        print(f"\nFLAC via ffmpeg: {flac:.1f} clips/s per worker with {DECODE_BATCH} files per ffmpeg process, "
              f"{flac1:.1f} with one process per file ({flac / flac1:.2f} x)")
        print()
        print(table(rows + [["wav16", float(wav_kb), "", "", "yes"], ["flac", flac_kb, "", "", "yes"]],
                    ["format", "KB per 10-s clip", "decode us/clip", "max abs err", "lossless"]))
        checksum = checksum_cost([mel for mel, _ in shards.iter_dir(os.path.join(tmp, "out_f16chunks", "train"))])
        default = shards.DEFAULT_CODEC
        print(f"\ndefault codec {default}: {sizes[default]['kb_per_clip'] / wav_kb:.3f} x WAV, "
              f"{sizes[default]['kb_per_clip'] / flac_kb:.3f} x FLAC, "
              f"{sizes[default]['kb_per_clip'] / sizes['f16planes']['kb_per_clip']:.4f} x f16planes")
        path = merge_results("ingest", {
            "clips_per_s_per_worker": speed[("wav", 1, DECODE_BATCH)], "clips_per_s_per_worker_flac_ffmpeg": flac,
            "clips_per_s_per_worker_flac_ffmpeg_per_file": flac1, "decode_batch": DECODE_BATCH,
            "clips_per_s_per_worker_2workers": speed[("wav", 2, DECODE_BATCH)],
            "clips_per_s_per_worker_2workers_steady": w2,
            "codec": default, "kb_per_clip": sizes[default]["kb_per_clip"], "wav_kb_per_clip": float(wav_kb),
            "flac_kb_per_clip": flac_kb, "codecs": sizes, "clips": a.clips, "checksum": checksum,
        })
        print(f"wrote {path}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
