"""`make bench-ingest`: ingest speed per worker and bytes per 10-s clip next to WAV and FLAC.

10-second demo clips (speech-like, instruments, noise textures, impacts) go through the real
folder ingest (ffmpeg decode + torchaudio log-mel + codec + tar write) with 1 and 2 workers.
FLAC goes through the batched decode (``DECODE_BATCH`` files per ffmpeg process) and, for
comparison, one ffmpeg process per file (``--decode-batch 1``).

The same FLAC clips are also ingested from WebDataset tars (``wds``) and parquet (``parquet``) next to the
folder path (``sources``: clips/s per worker and the ratio; ``--sources-only`` runs just that).

A realistic corpus (``ingest.demo.make_realistic_clip``: speech, music with drums, bands, street scenes,
with room reverb, background noise at -5 to 25 dB SNR, peaks at -20 to -1 dB FS) is ingested into one
shard and into many shards with 1 and 2 workers (items, not shards, are shared out), and with every
codec: KB per clip (also counting the 4-byte checksum per zstd frame that the shard format adds),
encode and decode time per clip.  Sizes compare each codec with 16-bit WAV and FLAC of the same audio.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads, as `python -m ingest` does (ingest/__main__.py)

import numpy as np  # noqa: E402
from _common import merge_results, table  # noqa: E402

import shards  # noqa: E402
from ingest.decode import transcode  # noqa: E402
from ingest.demo import write_corpus, write_realistic_corpus  # noqa: E402
from ingest.engine import DECODE_BATCH, IngestConfig, run_ingest, usable_cores  # noqa: E402
from ingest.sources.folder import FolderSource  # noqa: E402


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
    ap.add_argument("--real-clips", type=int, default=240, help="clips of the realistic corpus")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of interleaved 1-/2-worker runs per folder layout (median)")
    ap.add_argument("--parallel-only", action="store_true", help="only the 1- vs 2-worker runs on the realistic corpus")
    ap.add_argument("--source-clips", type=int, default=200, help="clips of the folder / wds / parquet comparison")
    ap.add_argument("--sources-only", action="store_true", help="only the folder / wds / parquet comparison")
    a = ap.parse_args()
    if a.sources_only:
        tmp = tempfile.mkdtemp(prefix="bench_ingest_")
        try:
            res = sources(tmp, a.source_clips, a.rounds)
            print(f"wrote {merge_results('ingest', {'sources': res})}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    if a.parallel_only:
        tmp = tempfile.mkdtemp(prefix="bench_ingest_")
        try:
            write_realistic_corpus(os.path.join(tmp, "real"), a.real_clips, seed=0)
            par = parallel(os.path.join(tmp, "real"), tmp, a.real_clips, a.rounds)
            report_parallel(par, a.real_clips, a.rounds)
            print(f"wrote {merge_results('ingest', {'realistic_parallel': _par_json(par, a.real_clips)})}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
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
        real = os.path.join(tmp, "real")
        real_wavs = write_realistic_corpus(real, a.real_clips, seed=0)
        real_wav_kb = float(np.mean([os.path.getsize(p) for p in real_wavs])) / 1024
        par = parallel(real, tmp, a.real_clips, a.rounds)
        real_sizes = codec_sizes(real, tmp, "real", levels={"f16chunks": (9, shards.codec.DEFAULT_LEVEL)})
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
        report_parallel(par, a.real_clips, a.rounds)
        print()
        print(table([[f"{c} (level {lv})", r["kb_per_clip"], r["kb_per_clip_checksummed"], r["encode_ms_per_clip"],
                      r["decode_us_per_clip"], "yes" if r["lossless"] else "no"] for (c, lv), r in real_sizes.items()]
                    + [["wav16", real_wav_kb, "", "", "", "yes"]],
                    ["codec (realistic corpus)", "KB per clip", "+4 B/zstd frame", "encode ms/clip", "decode us/clip",
                     "lossless"]))
        src_res = sources(tmp, a.source_clips, a.rounds)
        path = merge_results("ingest", {
            "sources": src_res,
            "realistic_parallel": _par_json(par, a.real_clips),
            "realistic": {"clips": a.real_clips, "wav_kb_per_clip": real_wav_kb,
                          "codecs": {f"{c}@{lv}": r for (c, lv), r in real_sizes.items()},
                          "default_kb_per_clip_checksummed":
                              real_sizes[(shards.DEFAULT_CODEC, shards.codec.DEFAULT_LEVEL)]["kb_per_clip_checksummed"]},
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


def sources(tmp: str, clips: int, rounds: int) -> dict:
    """The same 10-s FLAC clips (16 kHz) ingested from a folder, from WebDataset tars (100 clips per tar, with a
    json label member) and from parquet (the Hugging Face ``datasets`` layout, 100 rows per row group): clips/s
    per worker (1 worker, default threads) and clips per CPU second (this process and its ffmpeg children:
    what other jobs on a shared machine do not change), medians of ``rounds`` rounds with the three
    interleaved, and each source's ratio to the folder path within a round (median)."""
    import json as _j

    import pyarrow as pa
    import pyarrow.parquet as pq

    from ingest.sources.parquet import ParquetSource
    from ingest.sources.wds import WdsSource

    audio = os.path.join(tmp, "src_audio")
    write_corpus(audio, seed=2, sizes={"pretrain": clips})
    wavs = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(audio, "pretrain")) for f in fs if f.endswith(".wav"))
    flac_dir, tar_dir, pq_dir = (os.path.join(tmp, d) for d in ("src_flac", "src_tars", "src_parquet"))
    for d in (flac_dir, tar_dir, pq_dir):
        os.makedirs(d)
    names = []
    for i, p in enumerate(wavs):
        names.append(f"clip{i:05d}")
        transcode(p, os.path.join(flac_dir, names[-1] + ".flac"))
    blobs = [open(os.path.join(flac_dir, n + ".flac"), "rb").read() for n in names]
    import io
    import tarfile
    for t in range(0, len(names), 100):
        with tarfile.open(os.path.join(tar_dir, f"{t // 100:06d}.tar"), "w", format=tarfile.USTAR_FORMAT) as tf:
            for n, b in zip(names[t:t + 100], blobs[t:t + 100]):
                for ext, data in (("flac", b), ("json", _j.dumps({"labels": ["/m/09x0r"]}).encode())):
                    ti = tarfile.TarInfo(f"{n}.{ext}")
                    ti.size = len(data)
                    tf.addfile(ti, io.BytesIO(data))
    table_ = pa.table({"video_id": names, "audio": [{"bytes": b, "path": n + ".flac"} for n, b in zip(names, blobs)],
                       "labels": [["/m/09x0r"]] * len(names)})
    pq.write_table(table_, os.path.join(pq_dir, "part-0.parquet"), row_group_size=100)
    makers = {"folder": lambda: FolderSource(flac_dir, dataset="bench"),
              "wds": lambda: WdsSource([os.path.join(tar_dir, "*.tar")], os.path.join(tmp, "wds_out"), dataset="bench"),
              "parquet": lambda: ParquetSource([os.path.join(pq_dir, "*.parquet")], os.path.join(tmp, "pq_out"),
                                               dataset="bench")}
    runs: dict[str, list[float]] = {k: [] for k in makers}
    cpu: dict[str, list[float]] = {k: [] for k in makers}
    order = list(makers)
    for r in range(rounds):
        for name in order[r % 3:] + order[:r % 3]:
            out = os.path.join(tmp, f"src_{name}_{r}")
            c0, t0 = os.times(), time.perf_counter()
            s = run_ingest(makers[name](), IngestConfig(out=out, progress=False))
            dt, c1 = time.perf_counter() - t0, os.times()
            assert s["ingested"] == clips, s
            runs[name].append(s["ingested"] / dt)
            # this process (listing, decode, log-mel, codec, tar) and its ffmpeg children: robust to other jobs
            cpu_s = (c1.user - c0.user) + (c1.system - c0.system) + (c1.children_user - c0.children_user) \
                + (c1.children_system - c0.children_system)
            cpu[name].append(s["ingested"] / cpu_s)
            shutil.rmtree(out)
    res = {"clips": clips, "seconds_per_clip": 10, "format": "FLAC 16 kHz", "workers": 1, "rounds": rounds,
           "load_average_1m": round(os.getloadavg()[0], 2), "cores": usable_cores()}
    for name in makers:
        v, c = runs[name], cpu[name]
        res[name] = {"clips_per_s_per_worker": float(np.median(v)),
                     "ratio_vs_folder": float(np.median([x / f for x, f in zip(v, runs["folder"])])),
                     "clips_per_cpu_s": float(np.median(c)),
                     "cpu_ratio_vs_folder": float(np.median([x / f for x, f in zip(c, cpu["folder"])]))}
    print(f"\nthe same {clips} x 10-s FLAC clips from a folder, WebDataset tars and parquet (1 worker, median of "
          f"{rounds} interleaved rounds; load average {res['load_average_1m']} on {res['cores']} cores):")
    print(table([[n, res[n]["clips_per_s_per_worker"], res[n]["ratio_vs_folder"], res[n]["clips_per_cpu_s"],
                  res[n]["cpu_ratio_vs_folder"]] for n in makers],
                ["source", "clips/s per worker", "x folder", "clips per CPU s", "x folder (CPU)"]))
    return res


def _par_json(par: dict, clips: int) -> dict:
    return {"clips": clips, "load_average_1m": round(os.getloadavg()[0], 2), "cores": usable_cores(),
            **{lay: dict(per) for lay, per in par.items()}}


def report_parallel(par: dict, clips: int, rounds: int) -> None:
    print(f"\nrealistic corpus: {clips} x 10-s clips, 2 workers vs 1 (median of {rounds} rounds, configurations "
          f"interleaved; ratios run by run)")
    rows = []
    for lay, per in par.items():
        for cfg, r in per.items():
            rows.append([lay, r["workers"], r["threads"], r["processes_decoding"], r["total"], r["steady"],
                         r["steady"] / r["workers"], r.get("ratio_vs_1w", ""), r.get("ratio_vs_1w_1thread", ""),
                         r["worker_cpu_ms_per_clip"], r["main_cpu_ms_per_clip"], r["load_average"]])
    print(table(rows, ["folder", "workers", "threads", "decoding", "clips/s", "clips/s started", "per worker",
                       "2w / 1w", "2w / 1w 1 thread", "worker CPU ms/clip", "main CPU ms/clip", "load avg"]))
    print(f"(load average {os.getloadavg()[0]:.1f} now, on {usable_cores()} cores)")


# (name, workers, torch threads per worker; 0: cores // workers, the default)
PAR_CONFIGS = (("1w", 1, 0), ("1w_1thread", 1, 1), ("2w", 2, 0))


def parallel(folder: str, tmp: str, clips: int, rounds: int) -> dict[str, dict[str, dict[str, float]]]:
    """Clips/s of 1 worker (default threads and 1 thread) and 2 workers on the folder as one shard and as many
    (8 clips per shard); the order of the three rotates from round to round.

    ``total`` counts the whole run (with the start of the worker processes); ``steady`` the items written after
    the first ``2 x workers`` groups (16 clips each), when all have started; ``worker_cpu_ms_per_clip`` the CPU
    time of the decoding processes (all their threads) per clip, ``main_cpu_ms_per_clip`` that of the writing
    process (for 1 worker it also decodes: then the two are the same time); ``load_average`` the 1-minute
    load average at the end of the run (other jobs on the machine)."""
    res: dict[str, dict[str, list]] = {lay: {c[0]: [] for c in PAR_CONFIGS} for lay in ("one shard", "many shards")}
    for r in range(rounds):
        order = PAR_CONFIGS[r % 3:] + PAR_CONFIGS[:r % 3]
        for layout, size in (("one shard", str(clips)), ("many shards", "8")):
            for name, workers, threads in order:
                out = os.path.join(tmp, f"par_{r}_{size}_{name}")
                marks: list[tuple[float, int]] = []
                t0, c0 = time.perf_counter(), time.process_time()
                s = run_ingest(FolderSource(folder, dataset="real"),
                               IngestConfig(out=out, shard_size=size, workers=workers, threads=threads, progress=False),
                               on_items=lambda n: marks.append((time.perf_counter(), n)))
                dt, main_cpu = time.perf_counter() - t0, time.process_time() - c0
                skip = min(2 * workers, len(marks) - 2)  # groups written while the workers were starting
                steady = sum(n for _, n in marks[skip + 1:]) / max(marks[-1][0] - marks[skip][0], 1e-9)
                n = s["ingested"]
                wcpu = sum(w["cpu_s"] for w in s["workers"].values())
                res[layout][name].append({"total": n / dt, "steady": steady, "shards": s["planned_shards"],
                                          "worker_cpu_ms_per_clip": wcpu / n * 1e3, "main_cpu_ms_per_clip": main_cpu / n * 1e3,
                                          "processes_decoding": len(s["workers"]), "threads": s["threads_per_worker"],
                                          "load_average": os.getloadavg()[0]})
                shutil.rmtree(out)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for layout, per in res.items():
        out[layout] = {}
        for (name, workers, _), runs in zip(PAR_CONFIGS, per.values()):
            med = {k: float(np.median([x[k] for x in runs])) for k in runs[0] if k not in ("shards", "processes_decoding", "threads")}
            out[layout][name] = {**med, "workers": workers, "threads": runs[0]["threads"], "shards": runs[0]["shards"],
                                 "processes_decoding": min(x["processes_decoding"] for x in runs)}
        two = per["2w"]
        for base, key in (("1w", "ratio_vs_1w"), ("1w_1thread", "ratio_vs_1w_1thread")):
            out[layout]["2w"][key] = float(np.median([b["steady"] / a_["steady"] for a_, b in zip(per[base], two)]))
            out[layout]["2w"][key + "_total"] = float(np.median([b["total"] / a_["total"] for a_, b in zip(per[base], two)]))
        out[layout]["1w"]["ratio_1thread_vs_default"] = float(np.median(
            [b["steady"] / a_["steady"] for a_, b in zip(per["1w"], per["1w_1thread"])]))
    return out


def codec_sizes(folder: str, tmp: str, tag: str, levels: dict[str, tuple[int, ...]]) -> dict[tuple[str, int], dict]:
    """KB per clip of every codec on ``folder`` (+ 4 bytes per zstd frame: the checksums of the shard format),
    encode ms and decode us per clip (one process)."""
    import json as _j

    from ingest.decode import decode_audio
    from shards.frontend import get_preset, logmel

    out = {}
    fe = get_preset("byol_a")
    mels = [logmel(decode_audio(p, 16000), fe) for p in sorted(
        os.path.join(dp, f) for dp, _, fs in os.walk(folder) for f in fs if f.endswith(".wav"))[:40]]
    for codec in ("f16", "f16planes", "f16chunks", "u8"):
        for level in levels.get(codec, (shards.codec.DEFAULT_LEVEL,)):
            d = os.path.join(tmp, f"codec_{tag}_{codec}_{level}")
            run_ingest(FolderSource(folder, dataset="real"), IngestConfig(out=d, codec=codec, level=level, progress=False))
            m = shards.read_manifest(os.path.join(d, "train"))
            members = [mem for p in shards.shard_paths(os.path.join(d, "train")) for _, mem in shards.iter_tar_samples(p)]
            datas = [mem["mel.npy.zst"] for mem in members]
            metas = [_j.loads(mem["json"]) for mem in members]
            frames = [1 + len(mt.get("mel_chunks", {}).get("offsets", [])) for mt in metas]
            t0 = time.thread_time()
            for mel in mels:
                shards.encode_mel(mel, codec, level)
            enc_ms = (time.thread_time() - t0) / len(mels) * 1e3
            t0 = time.thread_time()
            for _ in range(3):
                for data, meta in zip(datas, metas):
                    shards.decode_mel(data, meta)
            dec_us = (time.thread_time() - t0) / (3 * len(datas)) * 1e6
            kb = float(np.mean([len(x) for x in datas])) / 1024
            out[(codec, level)] = {"kb_per_clip": kb, "kb_per_clip_checksummed": kb + 4 * float(np.mean(frames)) / 1024,
                                   "zstd_frames_per_clip": float(np.mean(frames)), "encode_ms_per_clip": enc_ms,
                                   "decode_us_per_clip": dec_us, "lossless": bool(m["codec"]["lossless"]),
                                   "max_abs_error": m["codec"]["max_abs_error"]}
            shutil.rmtree(d)
    return out


if __name__ == "__main__":
    main()
