"""Fine-tuning windows: held as arrays vs cut on demand from the shards (``eval.windows.ClipWindows``).

Builds a synthetic task of ``--clips`` 10-s log-mel clips (64 mels, the default ``f16chunks`` codec),
then, side by side in one run: the memory each way holds after loading (``tracemalloc``, which sees
numpy's buffers), the load time, and random fine-tuning batches of 32 windows per second.  For
scale: one ``audio_ntt`` (d=512) training step on such a batch, the work each batch feeds.

    make bench-eval            # or: python bench/bench_eval.py --clips 1000
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import merge_results, table  # noqa: E402


def write_task(root: str, clips: int, frames: int) -> list[str]:
    import shards
    from shards.frontend import get_preset

    fe = get_preset("byol_a")
    common = {"dataset": "bench", "split": "all", "frontend": fe.to_dict(), "frontend_hash": fe.hash()}
    rng = np.random.default_rng(0)
    keys = []
    for si in range(-(-clips // 500)):
        w = shards.ShardWriter(root, shards.shard_name("bench", "all", si), common=common)
        for i in range(si * 500, min(clips, (si + 1) * 500)):
            mel = np.cumsum(rng.standard_normal((fe.n_mels, frames)), axis=1).astype(np.float32) * 0.1 - 5
            keys.append(f"c{i:06d}")
            w.add(keys[-1], mel, {"labels": []})
        w.close()
    shards.build_manifest(root, command=["bench"])
    return keys


def held(fn):
    """``(result, bytes still allocated after fn, seconds)``."""
    gc.collect()
    tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    gc.collect()
    cur, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, cur, dt


def batches_per_s(get, n_windows: np.ndarray, rounds: int, batch: int = 32) -> float:
    rng = np.random.default_rng(1)
    t = time.perf_counter()
    for _ in range(rounds):
        clips = rng.integers(0, len(n_windows), batch)
        np.stack([get(int(i), int(rng.integers(0, n_windows[i]))) for i in clips])
    return rounds / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=200)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    import shards
    from eval.embed import make_windows
    from eval.runner import load_windows
    from eval.tasks import Window
    from models import build_encoder
    from shards.frontend import get_preset

    fe = get_preset("byol_a")
    window = Window("sliding", 96)
    with tempfile.TemporaryDirectory() as tmp:
        keys = write_task(tmp, a.clips, int(a.seconds * 100))

        def arrays():
            return [make_windows(mel, window, -9.0) for mel, _ in shards.iter_dir(tmp)]

        arr, arr_bytes, arr_s = held(arrays)
        cw, cw_bytes, cw_s = held(lambda: load_windows([tmp], keys, window, fe))
        assert cw.keys == keys and all(np.array_equal(cw.clip(i), arr[i]) for i in range(0, len(keys), 97))
        nwin = cw.n_windows
        # interleaved rounds: each side sees the same machine state
        arr_rate, cw_rate = [], []
        for _ in range(3):
            arr_rate.append(batches_per_s(lambda i, k: arr[i][k], nwin, a.rounds))
            cw_rate.append(batches_per_s(cw.window, nwin, a.rounds))
        enc = build_encoder("audio_ntt", d=512)
        opt = torch.optim.Adam(enc.parameters(), 1e-4)
        x = torch.randn(32, 1, 64, 96)
        for _ in range(2):
            opt.zero_grad()
            enc(x).pow(2).mean().backward()
            opt.step()
        t = time.perf_counter()
        for _ in range(5):
            opt.zero_grad()
            enc(x).pow(2).mean().backward()
            opt.step()
        step_per_s = 5 / (time.perf_counter() - t)
        cw.close()
    res = {
        "clips": a.clips, "seconds_per_clip": a.seconds, "windows": int(nwin.sum()),
        "arrays_mb": arr_bytes / 1e6, "clipwindows_mb": cw_bytes / 1e6,
        "memory_ratio": arr_bytes / max(cw_bytes, 1),
        "arrays_load_s": arr_s, "clipwindows_load_s": cw_s,
        "arrays_batches_per_s": float(np.median(arr_rate)), "clipwindows_batches_per_s": float(np.median(cw_rate)),
        "audio_ntt512_train_steps_per_s": step_per_s,
    }
    print(f"{a.clips} clips of {a.seconds:g} s, {res['windows']} sliding windows of 96 frames, batches of 32 "
          f"random windows (median of 3 interleaved rounds of {a.rounds})")
    print(table([["arrays (before)", res["arrays_mb"], arr_s, res["arrays_batches_per_s"]],
                 ["ClipWindows", res["clipwindows_mb"], cw_s, res["clipwindows_batches_per_s"]]],
                ["windows held as", "MB held", "load s", "batches/s"]))
    print(f"memory ratio arrays / ClipWindows: {res['memory_ratio']:,.0f}x; one audio_ntt-512 training step "
          f"on such a batch: {step_per_s:.1f}/s, so cutting costs "
          f"{100 * step_per_s / res['clipwindows_batches_per_s']:.1f} % of a step")
    print("wrote", merge_results("eval", res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
