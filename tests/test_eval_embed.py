"""Windows, the log-mel and embedding caches, fine-tuning, layer-wise probing and the online probe."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from eval import cache as C
from eval.embed import make_windows
from eval.finetune import FinetuneConfig
from eval.probes import ProbeConfig
from eval.runner import RunOptions, evaluate, resolve_models
from eval.tasks import Window, get_task
from shards.frontend import get_preset
from tests._eval_support import TINY, export_encoder, tiny_registered, wav, write

QUICK = ProbeConfig(max_epochs=40, patience=5, seeds=(0, 1))


@pytest.fixture(autouse=True, scope="module")
def _tiny_encoder():
    yield from tiny_registered()


def test_make_windows():
    mel = np.arange(4 * 250, dtype=np.float32).reshape(4, 250)
    w = make_windows(mel, Window("sliding", 96), -9.0)
    assert w.shape == (5, 4, 96)  # starts 0, 48, 96, 144 and the end-aligned 154
    assert np.array_equal(w[-1], mel[:, 154:]) and np.array_equal(w[1], mel[:, 48:144])
    c = make_windows(mel, Window("crop", 100), -9.0)
    assert c.shape == (1, 4, 100) and np.array_equal(c[0], mel[:, 75:175])
    short = make_windows(mel[:, :10], Window("sliding", 96), -9.0)
    assert short.shape == (1, 4, 96) and short[0, 0, 0] == -9.0 and np.array_equal(short[0, :, 43:53], mel[:, :10])
    capped = make_windows(np.zeros((4, 5000), np.float32), Window("sliding", 96, max_windows=7), 0.0)
    assert capped.shape[0] == 7


def _tone_csv(root, n_per=6, folds=3):
    rows = ["path,label,fold"]
    for i in range(n_per * 2):
        lab = "low" if i % 2 else "high"
        rel = f"a/{i}.wav"
        wav(os.path.join(root, rel), seconds=0.6, freq=300 if lab == "low" else 3000)
        rows.append(f"{rel},{lab},{i % folds + 1}")
    return write(os.path.join(root, "labels.csv"), "\n".join(rows) + "\n")


def test_kfold_csv_task_through_the_runner_and_cache(tmp_path, monkeypatch):
    _tone_csv(str(tmp_path / "data"))
    cache = str(tmp_path / "cache")
    models = resolve_models(["spectrogram"], frontend=get_preset("byol_a"))
    o = RunOptions(tasks=["csv"], data={"csv": str(tmp_path / "data")}, protocols=("linear", "knn"), cache_dir=cache,
                   probe=QUICK, progress=False)
    r = evaluate(models, o)
    res = r["models"]["spectrogram"]["results"]["csv"]
    assert res["knn"]["mean"] == 1.0 and res["linear"]["mean"] >= 0.9 and res["linear"]["folds"] == 3
    assert r["tasks"]["csv"]["protocol"] == "csv-kfold"
    # log-mels: melstream shards with a manifest, through the byol_a frontend
    import shards
    mel_dirs = [os.path.join(dp) for dp, _, fs in os.walk(os.path.join(cache, "mels")) if "manifest.json" in fs]
    assert len(mel_dirs) == 1
    m = shards.read_manifest(mel_dirs[0])
    assert m["frontend_hash"] == get_preset("byol_a").hash() and m["totals"]["clips"] == 12
    # embeddings: WebDataset shards + manifest, keyed by model hash / task / protocol
    emb_dirs = [dp for dp, _, fs in os.walk(os.path.join(cache, "emb")) if "manifest.json" in fs]
    assert {os.path.basename(d) for d in emb_dirs} == {"clip", "proj"}
    em = json.load(open(os.path.join(emb_dirs[0], "manifest.json")))
    assert em["format"] == "melstream-embeddings" and em["protocol"] == "csv-kfold" and em["totals"]["clips"] == 12
    assert em["model"]["hash"] == models[0].frozen.model_hash() and all(len(s["sha256"]) == 64 for s in em["shards"])
    import webdataset as wds
    urls = [os.path.join(emb_dirs[0], s["name"]) for s in em["shards"]]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode())
    assert len(samples) == 12 and samples[0]["emb.npy"].dtype == np.float32 and "labels" in samples[0]["json"]
    # a rerun reuses both caches
    import eval.embed as E
    monkeypatch.setattr(E, "compute_embeddings", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    monkeypatch.setattr(C, "TaskSource", None)
    r2 = evaluate(models, o)
    assert r2["models"]["spectrogram"]["results"]["csv"]["knn"]["mean"] == 1.0


def test_speech_commands_silence_windows_decode(tmp_path):
    root = tmp_path / "sc"
    for w in ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "bed"):
        wav(str(root / w / "0a7c2a8d_nohash_0.wav"), 0.3, 500)
        wav(str(root / w / "0b09edd3_nohash_0.wav"), 0.3, 700)
    write(str(root / "validation_list.txt"), "yes/0b09edd3_nohash_0.wav\n")
    write(str(root / "testing_list.txt"), "".join(f"{w}/0b09edd3_nohash_0.wav\n" for w in ("no", "up", "bed")))
    wav(str(root / "_background_noise_" / "pink.wav"), 12.0, 90)
    td = get_task("speech_commands_v1_12").load(str(root))
    fe = get_preset("tagliasacchi")
    dirs = C.ensure_mels(td, fe, str(tmp_path / "cache"), progress=False)
    got = dict(C.iter_mels(dirs))
    assert len(got) == len(td.clips)
    sil = [c for c in td.clips if c.labels == ("_silence_",)]
    assert sil and all(got[c.key].shape == (64, 101) for c in sil)  # 1-s windows cut from the noise file


def test_frontend_mismatch_recomputes_from_wavs(demo_small, tmp_path):
    shard_root, _ = demo_small
    td = get_task("demo_family").load(shard_root)
    same = C.ensure_mels(td, get_preset("byol_a"), str(tmp_path))
    assert same == td.mel_dirs  # the demo shards themselves
    dirs = C.ensure_mels(td, get_preset("hares"), str(tmp_path), progress=False)
    assert dirs != td.mel_dirs
    mels = dict(C.iter_mels(dirs))
    assert len(mels) == len(td.clips) and next(iter(mels.values())).shape[0] == 80


def test_layerwise_and_finetune_with_tiny_encoder(demo_small, tmp_path):
    shard_root, _ = demo_small
    run = export_encoder(str(tmp_path / "run"))
    models = resolve_models([run, "supervised"])
    assert [m.kind for m in models] == ["run", "supervised"] and models[1].name == f"supervised:{TINY}"
    o = RunOptions(tasks=["demo_family"], data_root=shard_root, protocols=("layerwise", "finetune"),
                   cache_dir=str(tmp_path / "cache"), probe=QUICK, progress=False,
                   finetune=FinetuneConfig(max_epochs=2, max_steps=4, seeds=(0,)))
    r = evaluate(models, o)
    res = r["models"]["run"]["results"]["demo_family"]
    assert sorted(res["layerwise"]) == ["block0", "block1"]
    assert all(0 <= v["mean"] <= 1 for v in res["layerwise"].values())
    assert 0 <= res["finetune"]["mean"] <= 1 and res["finetune"]["probe"] == "finetune"
    sup = r["models"][f"supervised:{TINY}"]["results"]["demo_family"]["supervised"]
    assert 0 <= sup["mean"] <= 1 and sup["lr_encoder"] == 1e-3


def test_online_probe(demo_small, tmp_path):
    from eval.embed import load_run
    from eval.online import OnlineProbe

    shard_root, _ = demo_small
    m = load_run(export_encoder(str(tmp_path / "run"), metrics=False))
    probe = OnlineProbe("demo_family", data_root=shard_root, cache_dir=str(tmp_path / "cache"),
                        frontend=m.frontend, linear_steps=50)
    m.encoder.train()
    out = probe.evaluate(m.encoder, m.input_norm)
    assert set(out) == {"probe/demo_family/knn_accuracy", "probe/demo_family/linear_accuracy"}
    assert all(0 <= v <= 1 for v in out.values())
    assert m.encoder.training  # mode restored
    assert probe.evaluate(m.encoder, m.input_norm) == out  # deterministic


def test_unknown_model_and_task_errors(tmp_path):
    with pytest.raises(ValueError, match="not a run dir"):
        resolve_models([str(tmp_path)])
    with pytest.raises(ValueError, match="untrained:mobile"):
        resolve_models(["untrained"])
    with pytest.raises(KeyError, match="unknown task"):
        get_task("esc51")
