"""``eval run``: resolve models and tasks, cache log-mels and embeddings, run the probes, collect results."""
from __future__ import annotations

import copy
import inspect
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch

from models import ENCODERS
from shards import rundir
from shards.bounded import MAX_TEXT_BYTES, BoundError, load_yaml_bounded
from shards.frontend import DEFAULT_PRESET, FrontendConfig, get_preset

from .cache import default_cache_dir, ensure_mels
from .embed import FrozenModel, SpectrogramModel, build_random_encoder, get_embeddings, load_run, pad_value, untrained_model
from .finetune import FinetuneConfig, run_finetune
from .logreg import run_logreg_probe
from .probes import ProbeConfig, ProbeInput, label_array, make_folds, run_head_probe, run_knn_probe
from .report import new_results
from .tasks import TaskData, TaskSpec, Window, get_task
from .windows import ClipWindows

log = logging.getLogger("melstream.eval")
FROZEN_PROBES = ("linear", "logreg", "knn", "mlp", "layerwise")
PER_EXAMPLE = {"type": "per_example"}


@dataclass
class ModelEntry:
    """One report row: a run dir or a baseline (``spectrogram``, ``untrained[:enc]``, ``supervised[:enc]``)."""

    name: str
    kind: str                                  # run | spectrogram | untrained | supervised
    frontend: FrontendConfig
    frozen: Optional[FrozenModel] = None
    make_encoder: Optional[Callable[[int], torch.nn.Module]] = None
    input_norm: Optional[dict] = None
    info: dict[str, Any] = field(default_factory=dict)


def is_run_dir(spec: str) -> bool:
    return rundir.is_run_dir(spec)


def _encoder_kwargs(encoder: str, fe: FrontendConfig) -> dict:
    if encoder not in ENCODERS:
        raise ValueError(f"unknown encoder {encoder!r}; known: {sorted(ENCODERS)}")
    try:
        params = inspect.signature(ENCODERS[encoder]).parameters
    except (TypeError, ValueError):
        params = {}
    return {"n_mels": fe.n_mels} if "n_mels" in params else {}


def resolve_models(specs: list[str], frontend: Optional[FrontendConfig] = None, device: str = "cpu") -> list[ModelEntry]:
    """Turn ``--model`` values into :class:`ModelEntry` rows (run dirs first resolved: baselines copy them).
    ``frontend``: the baselines' frontend (default: the first run dir's, else the default preset)."""
    runs: dict[str, ModelEntry] = {}
    for s in specs:
        if is_run_dir(s):
            d = rundir.run_dir_of(s)
            fm = load_run(d, device=device)
            enc0 = copy.deepcopy(fm.encoder).cpu()
            runs[s] = ModelEntry(fm.name, "run", fm.frontend, fm, (lambda e: (lambda seed: copy.deepcopy(e)))(enc0),
                                 fm.input_norm, {"kind": "run", **fm.describe(), "init_seed": init_seed(d)})
    ref = next(iter(runs.values()), None)
    fe = frontend or (ref.frontend if ref else get_preset(DEFAULT_PRESET))
    out, names = [], set()
    for s in specs:
        if s in runs:
            e = runs[s]
        elif s == "spectrogram":
            e = ModelEntry("spectrogram", "spectrogram", fe, SpectrogramModel(fe))
            e.info = {"kind": "spectrogram", **e.frozen.describe()}
        elif s.split(":", 1)[0] in ("untrained", "supervised"):
            kind, _, enc = s.partition(":")
            enc_named = bool(enc)
            if enc:
                kwargs, norm, efe = _encoder_kwargs(enc, fe), PER_EXAMPLE, fe
            elif ref is not None:
                enc, kwargs, norm, efe = ref.info["encoder"], dict(ref.info["kwargs"]), ref.input_norm, ref.frontend
            else:
                raise ValueError(f"--model {s}: name the encoder ({kind}:mobile) or also pass a run dir to copy")
            name = f"{kind}:{enc}"
            maker = (lambda en, kw: (lambda seed: build_random_encoder(en, kw, seed)))(enc, kwargs)
            if kind == "untrained":  # the run's own starting point: its architecture at its training seed
                seed = int(ref.info.get("init_seed", 0)) if ref is not None and not enc_named else 0
                fm = untrained_model(enc, kwargs, efe, norm, seed=seed, device=device, name=name)
                e = ModelEntry(name, "untrained", efe, fm, maker, norm, {**fm.describe(), "kind": "untrained"})
            else:
                e = ModelEntry(name, "supervised", efe, None, maker, norm,
                               {"kind": "supervised", "encoder": enc, "kwargs": kwargs, "input_norm": norm,
                                "hash": f"supervised-{enc}-{efe.hash()}"})
        else:
            raise ValueError(f"--model {s!r}: not a run dir (no encoder.json there) and not a baseline "
                             "(spectrogram, untrained[:ENCODER], supervised[:ENCODER])")
        if e.name in names:
            e.name = f"{e.name}#{len(names)}"
        names.add(e.name)
        out.append(e)
    return out


def init_seed(run_dir: str) -> int:
    """The seed a run's encoder was initialised with: ``seed`` of its ``config.yaml`` (the trainer seeds
    torch with it right before building the encoder).  0 when there is none (imported weights) or it is
    unreadable or not an integer in [0, 2**32): the file is outside input, read with bounds."""
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        return 0
    try:
        cfg = load_yaml_bounded(path, MAX_TEXT_BYTES)
    except (OSError, BoundError, ValueError) as e:
        log.warning("%s: unreadable (%s); the untrained baseline uses seed 0", path, str(e)[:200])
        return 0
    seed = cfg.get("seed") if isinstance(cfg, dict) else None
    if isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**32:
        return seed
    return 0


@dataclass
class RunOptions:
    tasks: list[str]
    data_root: str = "data"
    data: dict[str, str] = field(default_factory=dict)
    protocols: tuple[str, ...] = ("linear", "knn")
    cache_dir: str = field(default_factory=default_cache_dir)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    supervised_lr: float = 1e-3
    window_frames: Optional[int] = None
    window_mode: Optional[str] = None
    aggregate: Optional[str] = None
    limit: Optional[int] = None
    batch_size: int = 64
    workers: int = 1
    progress: bool = True


def resolve_window(spec: type[TaskSpec], o: RunOptions) -> Window:
    w = spec.window
    return Window(o.window_mode or w.mode, o.window_frames or w.frames, o.aggregate or w.aggregate, w.max_windows)


def load_task(name: str, o: RunOptions) -> tuple[type[TaskSpec], TaskData]:
    spec = get_task(name)
    root = o.data.get(name) or spec.locate(o.data_root)
    td = spec.load(root).limited(o.limit)
    return spec, td


def task_info(spec: type[TaskSpec], td: TaskData, window: Window) -> dict[str, Any]:
    counts = td.counts()
    sizes = (f"{len(td.folds)} folds ({len(td.clips)} clips)" if td.kfold else
             " / ".join(str(counts.get(s, 0)) if s != "valid" or counts.get(s) else "carved" for s in ("train", "valid", "test")))
    return {"protocol": td.protocol, "metric": "mAP" if td.multilabel else "accuracy", "domain": spec.domain,
            "multilabel": td.multilabel, "classes": len(td.classes), "sizes": sizes, "window": window.embed_slug(),
            "aggregate": window.aggregate, "reference": spec.reference, "notes": list(td.notes),
            "root": os.path.abspath(td.root), "family": spec.family}


def load_windows(dirs: list[str], keys: list[str], window: Window, fe: FrontendConfig) -> ClipWindows:
    """The windows of ``keys`` (those present in ``dirs``), cut on demand from the mel shards."""
    return ClipWindows(dirs, keys, window, pad_value(fe))


def evaluate(models: list[ModelEntry], o: RunOptions, results: Optional[dict] = None,
             on_task_done: Optional[Callable[[dict], None]] = None) -> dict[str, Any]:
    results = results or new_results()
    for m in models:
        results["models"].setdefault(m.name, {"info": m.info, "results": {}})
    loaded = {t: load_task(t, o) for t in o.tasks}  # every layout is checked before any work starts
    for tname in o.tasks:
        t0 = time.time()
        spec, td = loaded[tname]
        window = resolve_window(spec, o)
        results["tasks"][tname] = task_info(spec, td, window)
        mel_cache: dict[str, list[str]] = {}

        def mels(fe: FrontendConfig) -> list[str]:
            have = mel_cache.get(fe.hash())
            if have is None or not all(os.path.isfile(os.path.join(d, "manifest.json")) for d in have):
                mel_cache[fe.hash()] = ensure_mels(td, fe, o.cache_dir, spec.max_seconds, o.workers, o.progress)
            return mel_cache[fe.hash()]

        for m in models:
            res = results["models"][m.name]["results"].setdefault(tname, {})
            frozen = [p for p in o.protocols if p in FROZEN_PROBES]
            if m.kind == "spectrogram":
                frozen = [p for p in frozen if p != "layerwise"]
            if m.frozen is not None and frozen:
                emb = get_embeddings(m.frozen, td, lambda: mels(m.frontend), window, o.cache_dir,
                                     blocks="layerwise" in frozen, batch_size=o.batch_size, progress=o.progress)
                y = label_array(td, emb.keys)
                folds = make_folds(td, emb.keys, o.probe.valid_fraction)

                def pin(kind: str) -> ProbeInput:
                    return ProbeInput(emb.kinds[kind], y, td.multilabel, td.classes, folds, window.aggregate, td.slots)

                desc = f"{tname} [{m.name}]"
                for p in frozen:
                    if p == "linear":
                        res["linear"] = run_head_probe(pin("clip"), o.probe, "linear", o.progress, f"linear {desc}")
                    elif p == "logreg":
                        res["logreg"] = run_logreg_probe(pin("clip"), o.probe)
                    elif p == "mlp":
                        res["mlp"] = run_head_probe(pin("clip"), o.probe, "mlp", o.progress, f"mlp {desc}")
                    elif p == "knn":
                        res["knn"] = run_knn_probe(pin(m.frozen.knn_kind), o.probe)
                    elif p == "layerwise":
                        res["layerwise"] = {b: run_head_probe(pin(b), o.probe, "linear", o.progress, f"{b} {desc}")
                                            for b in emb.block_kinds()}
            want_ft = m.kind == "supervised" or (m.kind == "run" and "finetune" in o.protocols)
            if want_ft and m.make_encoder is not None:
                windows = load_windows(mels(m.frontend), [c.key for c in td.clips], window, m.frontend)
                keys = windows.keys
                pi = ProbeInput([np.zeros((1, 1))] * len(keys), label_array(td, keys), td.multilabel, td.classes,
                                make_folds(td, keys, o.probe.valid_fraction), window.aggregate, td.slots)
                cfg = o.finetune
                if m.kind == "supervised":
                    cfg = FinetuneConfig(**{**cfg.__dict__, "lr_encoder": o.supervised_lr})
                key = "supervised" if m.kind == "supervised" else "finetune"
                res[key] = run_finetune(m.make_encoder, m.input_norm, windows, pi, cfg, key, o.progress,
                                        f"{key} {tname} [{m.name}]")
            for r in res.values():
                if isinstance(r, dict) and "probe" in r:
                    r["task_protocol"] = td.protocol
        results["tasks"][tname]["seconds"] = round(time.time() - t0, 1)
        log.info("%s done in %.1f s", tname, time.time() - t0)
        if on_task_done:
            on_task_done(results)
    return results
