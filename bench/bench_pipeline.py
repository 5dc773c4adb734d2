"""``make bench-pipeline``: examples/s per worker for every sampler, from local shards, at batch 256.

Side by side, in the same run, the way the official BYOL-A code feeds its model: read the 10-s WAV,
crop 0.95 s (96 frames), compute the log-mel with torchaudio, then the same augmentations.  The ratio
comes from batches of the two paths taken in turn (``side_by_side``), after both reached their steady
state (a full mixup memory), so both are measured under the same machine conditions.

A DataLoader worker runs single-threaded (torch sets one thread in workers, and the pipeline keeps
numpy's BLAS to one thread there), so the figures are measured in this process with the same
settings and reported per CPU-second of that one thread (``cpu``) -- what one worker delivers on a
core of its own -- next to wall-clock rates (``wall``), which on a shared machine also count the time
other processes held the core.  Writes ``bench/results/pipeline.json``.

The epoch (elastic) data order against today's resampled order, side by side for ``crop`` and ``views``
(``--orders-only``: just that, into ``bench/results/pipeline_elastic.json``).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SAMPLER_NAMES = ["crop", "temporal_gap", "clip_pair", "triplet", "context", "views", "pitch_shift", "mix_views",
                 "clip_pair+pitch_shift"]


def make_data(root: str, clips: int) -> tuple[str, str]:
    shards = os.path.join(root, "shards")
    audio = os.path.join(root, "audio")
    import shutil

    import shards as shards_pkg

    man = os.path.join(shards, "pretrain", "manifest.json")
    if os.path.exists(man) and shards_pkg.read_manifest(os.path.dirname(man))["codec"]["name"] != shards_pkg.DEFAULT_CODEC:
        shutil.rmtree(shards)  # made with an older default codec: rebuild, so the figures describe the default
    if not os.path.exists(man):
        from ingest.__main__ import main

        rc = main(["demo", "--out", shards, "--audio-dir", audio, "--pretrain-clips", str(clips), "--train-clips", "4",
                   "--test-clips", "4", "--shard-size", "50", "--no-progress"])
        if rc:
            raise SystemExit(f"ingest failed ({rc})")
    return os.path.join(shards, "pretrain"), os.path.join(audio, "pretrain")


def rate(next_batch, batch: int, n: int, warmup: int) -> dict[str, float]:
    """Examples/s over ``n`` one-batch windows: ``cpu`` = best window by thread CPU time (timeit's rule:
    the least disturbed window), ``cpu_median``, and ``wall`` over all windows."""
    for _ in range(warmup):
        next_batch()
    cpu = []
    w0 = time.perf_counter()
    for _ in range(n):
        c0 = time.thread_time()
        next_batch()
        cpu.append(time.thread_time() - c0)
    wall = time.perf_counter() - w0
    return {"cpu": batch / min(cpu), "cpu_median": batch / float(np.median(cpu)), "wall": batch * n / wall}


def bench_shards(shard_dir: str, name: str, batch: int, n: int, warmup: int, **kw) -> dict[str, float]:
    from pipeline import build_loader

    loader, info = build_loader([shard_dir], name, batch, mode="train", seed=0, **kw)
    it = iter(loader)
    return rate(lambda: next(it), batch, n, warmup)


def bench_device_views(shard_dir: str, batch: int, n: int, warmup: int) -> dict[str, dict[str, float]]:
    """Worker part (crop + pre-norm) and the batched torch augmentation, each on its own."""
    from pipeline import build_loader

    loader, info = build_loader([shard_dir], "views", batch, mode="train", seed=0,
                                sampler_kwargs={"augment_on": "device"})
    it = iter(loader)
    worker = rate(lambda: next(it), batch, n, warmup)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    aug = info.device_transform.to(dev)
    batches = [next(it) for _ in range(4)]
    for b in batches:
        b["x"] = b["x"].to(dev)

    def step(i=[0]):
        out = aug(batches[i[0] % 4])
        i[0] += 1
        if dev == "cuda":
            torch.cuda.synchronize()
        return out

    return {"worker": worker, f"augment_{dev}": rate(step, batch, max(n, 8), 10)}


def wav_batches(audio_dir: str, name: str, batch: int, **sampler_kwargs):
    """``next_batch()`` the official BYOL-A way: decode the WAV, crop 0.95 s, log-mel per example, then
    the same sampler and collation as the shard path.  The augmentations are melstream's own on both
    paths (not the official per-example torch modules), so the ratio isolates what reading
    precomputed log-mels saves."""
    from types import SimpleNamespace

    import soundfile as sf

    from pipeline import build_sampler
    from pipeline.dataset import collate
    from shards.frontend import LogMel, get_preset

    files = sorted(glob.glob(os.path.join(audio_dir, "*", "*.wav")))
    fe = get_preset("byol_a")
    to_mel = LogMel(fe).eval()
    n_frames = 96
    seg = (n_frames - 1) * fe.hop_length  # 15200 samples -> 96 frames with center=True
    sampler = build_sampler(name, **sampler_kwargs)
    sampler.bind(SimpleNamespace(mean=-4.5, std=2.7, frontend=fe.to_dict(), vocabulary=[]))
    rng = np.random.default_rng(0)

    def one():
        # as byol_a/dataset.py (WaveInLMSOutDataset.__getitem__): soundfile's default float64 read of the
        # whole file, torch.tensor(...).to(float32), a random 0.95-s crop, log-mel of the crop
        wav, sr = sf.read(files[int(rng.integers(len(files)))])
        wav = torch.tensor(wav).to(torch.float32)
        s = int(rng.integers(0, max(len(wav) - seg, 0) + 1))
        with torch.inference_mode():
            mel = to_mel(wav[s:s + seg]).numpy()
        return sampler(mel, {}, rng)

    def next_batch():
        exs = [one() for _ in range(batch)]
        return collate(exs, [True] * batch, sampler, rng)

    return next_batch


def side_by_side(shard_dir: str, audio_dir: str, name: str, batch: int, rounds: int, warmup: int,
                 shard_kwargs: dict | None = None, wav_kwargs: dict | None = None) -> dict[str, float]:
    """Shards and the WAV path, one batch each in turn (order alternating), after both have warmed up
    (for ``views``: a full mixup memory, the steady state of a run).  Both see the same machine at the
    same moments, so their ratio is stable where separate runs swing by 10-30 % on a shared host.
    ``ratio`` is the median over rounds of (WAV batch time / shard batch time).  ``shard_kwargs`` /
    ``wav_kwargs``: sampler options of each side (``augment_on='device'``: the worker's part only)."""
    from pipeline import build_loader

    loader, _ = build_loader([shard_dir], name, batch, mode="train", seed=0, sampler_kwargs=shard_kwargs or {})
    it = iter(loader)
    paths = {"shards": lambda: next(it), "wav": wav_batches(audio_dir, name, batch, **(wav_kwargs or {}))}
    for fn in paths.values():
        for _ in range(warmup):
            fn()
    t: dict[str, list[float]] = {"shards": [], "wav": []}
    for r in range(rounds):
        for k in (("shards", "wav") if r % 2 == 0 else ("wav", "shards")):
            c0 = time.thread_time()
            paths[k]()
            t[k].append(time.thread_time() - c0)
    ratios = [w / s for w, s in zip(t["wav"], t["shards"])]
    return {"shards": batch / min(t["shards"]), "wav": batch / min(t["wav"]),
            "shards_median": batch / float(np.median(t["shards"])), "wav_median": batch / float(np.median(t["wav"])),
            "ratio": float(np.median(ratios)), "ratio_min": float(min(ratios))}


def _stream(shard_dir: str, name: str, batch: int, order: str, repeat: int):
    """An in-process iterator of one worker's batches in ``order`` over the shards listed ``repeat`` times
    (a dataset ``repeat`` x larger, so epoch-order lanes are as long as on a real corpus)."""
    import dataclasses

    from pipeline import MelStream, build_sampler, read_manifests

    facts = read_manifests([shard_dir])
    facts = dataclasses.replace(facts, shards=list(facts.shards) * repeat, num_clips=facts.num_clips * repeat)
    smp = build_sampler(name)
    smp.bind(facts)
    ds = MelStream(facts, smp, batch, mode="train", seed=0, order=order)
    return iter(ds)


def side_by_side_orders(shard_dir: str, name: str, batch: int, rounds: int, warmup: int, repeat: int) -> dict:
    """Epoch order (elastic) and today's resampled order, one batch each in turn, in this process: ``cost`` is
    (total epoch time / total resampled time) - 1 over all rounds (``cost_halves``: the same over each half),
    totals rather than a median, as epoch-order lanes read a block of clips every 32 steps."""
    its = {o: _stream(shard_dir, name, batch, o, repeat) for o in ("resampled", "epoch")}
    for it in its.values():
        for _ in range(warmup):
            next(it)
    t: dict[str, list[float]] = {"resampled": [], "epoch": []}
    for r in range(rounds):
        for k in (("resampled", "epoch") if r % 2 == 0 else ("epoch", "resampled")):
            c0 = time.thread_time()
            next(its[k])
            t[k].append(time.thread_time() - c0)
    h = rounds // 2
    return {"resampled": batch * rounds / sum(t["resampled"]), "epoch": batch * rounds / sum(t["epoch"]),
            "cost": sum(t["epoch"]) / sum(t["resampled"]) - 1.0,
            "cost_halves": [sum(t["epoch"][:h]) / sum(t["resampled"][:h]) - 1.0,
                            sum(t["epoch"][h:]) / sum(t["resampled"][h:]) - 1.0]}


def skip_cost_us(shard_dir: str, passes: int = 5) -> float:
    """Microseconds to pass over one sample without decoding it (what a worker sharing its lanes with other
    workers by steps pays per sample of theirs): mmap'ed tar headers only."""
    from pipeline.dataset import open_shard
    from pipeline.tario import iter_tar_stream
    from shards import read_manifest

    names = [os.path.join(shard_dir, s["name"]) for s in read_manifest(shard_dir)["shards"]]
    best = float("inf")
    for _ in range(passes):
        n, c0 = 0, time.thread_time()
        for path in names:
            with open_shard(path) as f:
                for _ in iter_tar_stream(f):
                    n += 1
        best = min(best, (time.thread_time() - c0) / max(n, 1))
    return best * 1e6


def orders_section(shard_dir: str, batch: int, rounds: int, warmup: int, repeat: int) -> dict:
    res = {k: side_by_side_orders(shard_dir, k, batch, rounds, warmup, repeat) for k in ("crop", "views")}
    for k, r in res.items():
        print(f"{k:8s} resampled {r['resampled']:7.0f} /s vs epoch (elastic) {r['epoch']:7.0f} /s per worker, side by "
              f"side: cost {100 * r['cost']:+.1f} % (halves {100 * r['cost_halves'][0]:+.1f} / "
              f"{100 * r['cost_halves'][1]:+.1f})",
              flush=True)
    skip = skip_cost_us(shard_dir)
    print(f"skipping one sample without decoding: {skip:.2f} us", flush=True)
    return {"side_by_side_examples_per_s_per_worker": {k: {"resampled": round(r["resampled"]), "epoch": round(r["epoch"])}
                                                       for k, r in res.items()},
            "epoch_cost_percent": {k: round(100 * r["cost"], 1) for k, r in res.items()},
            "epoch_cost_percent_halves": {k: [round(100 * c, 1) for c in r["cost_halves"]] for k, r in res.items()},
            "skip_one_sample_us": round(skip, 2),
            "settings": {"batch_size": batch, "rounds": rounds, "warmup_batches": warmup, "shards_listed_times": repeat,
                         "measure": "total thread CPU time of the epoch-order batches / of the resampled ones, batches "
                                    "taken in turn in one process (one worker's work), over all rounds",
                         "skip_note": "a worker that shares lanes with h-1 others by steps (fewer lanes per rank than "
                                      "workers) passes over h-1 samples per row it makes"},
            "target_cost_percent": 5}


def bench_workers(shard_dir: str, name: str, batch: int, n: int, workers: int) -> float:
    from pipeline import build_loader

    loader, _ = build_loader([shard_dir], name, batch, mode="train", seed=0, num_workers=workers)
    it = iter(loader)
    for _ in range(2 * workers):
        next(it)
    t = time.perf_counter()
    for _ in range(n):
        next(it)
    return batch * n / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data/bench_pipeline", help="where demo shards and WAVs are made (once)")
    ap.add_argument("--out", default="bench/results/pipeline.json")
    ap.add_argument("--clips", type=int, default=64, help="10-s demo clips to ingest")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--batches", type=int, default=8, help="measured one-batch windows per figure")
    ap.add_argument("--warmup", type=int, default=4, help="batches before measuring (fills the shuffle buffer)")
    ap.add_argument("--rounds", type=int, default=24, help="alternating shard/WAV batches for the ratio")
    ap.add_argument("--warmup-side", type=int, default=9,
                    help="batches of each path before the side-by-side rounds (9 x 256 fills the 2048-entry mixup memory)")
    ap.add_argument("--workers", type=int, default=2, help="also measure this many DataLoader workers (0: skip)")
    ap.add_argument("--orders-only", action="store_true",
                    help="only the epoch (elastic) vs resampled order comparison, into --orders-out")
    ap.add_argument("--orders-out", default="bench/results/pipeline_elastic.json")
    ap.add_argument("--orders-rounds", type=int, default=128, help="a multiple of the 32-clip shuffle block")
    ap.add_argument("--orders-repeat", type=int, default=200, help="list the bench shards this many times")
    a = ap.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.WARNING)
    from threadpoolctl import threadpool_limits

    t_start = time.time()
    shard_dir, audio_dir = make_data(a.data, a.clips)
    threadpool_limits(1, user_api="blas")  # what a DataLoader worker runs with
    torch.set_num_threads(1)
    orders = orders_section(shard_dir, a.batch, a.orders_rounds, a.warmup, a.orders_repeat)
    orders["machine"] = {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
                         "platform": platform.platform(), "torch": torch.__version__}
    if a.orders_only:
        os.makedirs(os.path.dirname(os.path.abspath(a.orders_out)), exist_ok=True)
        with open(a.orders_out, "w") as f:
            json.dump(orders, f, indent=1)
        return 0
    res: dict[str, dict] = {"samplers": {}}
    for name in SAMPLER_NAMES:
        res["samplers"][name] = bench_shards(shard_dir, name, a.batch, a.batches, a.warmup)
        r = res["samplers"][name]
        print(f"{name:24s} {r['cpu']:8.0f} /s per worker (median {r['cpu_median']:.0f}, wall {r['wall']:.0f})", flush=True)
    res["crops_per_clip_4"] = {k: bench_shards(shard_dir, k, a.batch, a.batches, a.warmup, crops_per_clip=4)
                               for k in ("crop", "views")}
    res["views_device"] = bench_device_views(shard_dir, a.batch, a.batches, a.warmup)
    res["wav"] = {k: side_by_side(shard_dir, audio_dir, k, a.batch, a.rounds, a.warmup_side) for k in ("crop", "views")}
    # views as the trainer runs them on a GPU (augment_on='auto' -> 'device'): the worker reads, crops and
    # pre-normalises, the GPU augments.  Against the WAV path augmenting in its worker (the official loader)
    # and against the WAV path that also leaves the augmentations to the GPU.
    dev = {"augment_on": "device"}
    res["wav"]["views_gpu"] = side_by_side(shard_dir, audio_dir, "views", a.batch, a.rounds, a.warmup_side,
                                           shard_kwargs=dev)
    res["wav"]["views_gpu_both"] = side_by_side(shard_dir, audio_dir, "views", a.batch, a.rounds, a.warmup_side,
                                                shard_kwargs=dev, wav_kwargs=dev)
    for k, r in res["wav"].items():
        print(f"{k:24s} shards {r['shards']:8.0f} /s vs WAV {r['wav']:6.0f} /s per worker, side by side: "
              f"ratio {r['ratio']:.1f} (median of {a.rounds} rounds, lowest {r['ratio_min']:.1f})", flush=True)
    if a.workers > 1:
        torch.set_num_threads(1)
        res["workers_total"] = {k: bench_workers(shard_dir, k, a.batch, 3 * a.batches, a.workers) for k in ("crop", "views")}
    per_worker = {k: round(v["cpu"]) for k, v in res["samplers"].items()}
    ratio = {k: round(v["ratio"], 1) for k, v in res["wav"].items()}
    out = {
        "examples_per_s_per_worker": per_worker,
        "shards_vs_wav_ratio": ratio,
        "shards_vs_wav_ratio_lowest_round": {k: round(v["ratio_min"], 1) for k, v in res["wav"].items()},
        "side_by_side_examples_per_s_per_worker": {k: {"shards": round(v["shards"]), "wav": round(v["wav"])}
                                                  for k, v in res["wav"].items()},
        "wav_examples_per_s_per_worker": {k: round(v["wav"]) for k, v in res["wav"].items()},
        "median_examples_per_s_per_worker": {k: round(v["cpu_median"]) for k, v in res["samplers"].items()},
        "wall_examples_per_s": {k: round(v["wall"]) for k, v in res["samplers"].items()},
        "wav_median_examples_per_s_per_worker": {k: round(v["wav_median"]) for k, v in res["wav"].items()},
        "crops_per_clip_4_per_worker": {k: round(v["cpu"]) for k, v in res["crops_per_clip_4"].items()},
        "views_augment_on_device": {k: round(v["cpu"]) for k, v in res["views_device"].items()},
        f"total_examples_per_s_{a.workers}_workers_wall": {k: round(v) for k, v in res.get("workers_total", {}).items()},
        "targets": {"crop": 5000, "views": 2000, "ratio_crop": 10, "ratio_views": 10},
        "side_by_side_rows": {"crop": "crop, both paths", "views": "views, augmentations in the worker on both paths",
                              "views_gpu": "views as trained on a GPU (shard worker: read, crop, pre-norm; the GPU "
                                           "augments) vs the WAV path augmenting in its worker (official loader)",
                              "views_gpu_both": "views_gpu vs the WAV path also leaving the augmentations to the GPU"},
        "settings": {"batch_size": a.batch, "measured_batches": a.batches, "clip_seconds": 10, "preset": "byol_a",
                     "shuffle_buffer": 1000, "clips": a.clips,
                     "codec": __import__("shards").read_manifest(shard_dir)["codec"]["name"],
                     "measure": "examples per CPU-second of the one thread that runs a worker's pipeline, best one-batch "
                                "window (median alongside); wall-clock rates count time other processes held the core"},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "load_average_1m": round(os.getloadavg()[0], 2), "cuda": torch.cuda.is_available()},
        "epoch_order_vs_resampled": orders,
        "seconds": round(time.time() - t_start, 1),
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
