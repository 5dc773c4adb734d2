"""The embedded demo corpus: deterministic synthetic audio with structure worth learning.

Four sound families, each with internal variety, 10-second clips at 16 kHz, random loudness:

* ``speech`` -- a glottal pulse train (f0 90-260 Hz with intonation contours) through three
  vowel formant resonators that change per syllable, syllable rhythm 3-6 Hz, pauses.
* ``instrument`` -- note sequences of one pitch class across octaves with one of four timbres
  (``string``: bright harmonic, slow attack; ``flute``: few harmonics, vibrato; ``mallet``:
  inharmonic partials, fast decay; ``organ``: odd harmonics, flat envelope).
* ``noise`` -- textures: ``rain`` (high-passed noise with droplets), ``wind`` (low-passed,
  slowly modulated noise), ``engine`` (harmonic hum of a 20-60 Hz rotation plus rumble).
* ``impact`` -- knocks: decaying resonant modes struck at irregular times.

Labels: ``family=<f>``; instruments add ``timbre=<t>`` and ``pitch=<pitch class>``; noises add
``texture=<t>``.  Splits: ``pretrain`` (unlabeled use), ``train`` and ``test`` (probes).  The audio is
written as WAV files with a ``labels.csv`` and then ingested through the folder path.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from .decode import encode_wav


def lfilter(b: Any, a: Any, x: np.ndarray) -> np.ndarray:
    """``scipy.signal.lfilter``, imported on first use: every ``python -m ingest`` loads this module and
    scipy.signal takes seconds to import; only the demo corpus needs it."""
    from scipy.signal import lfilter as _lfilter

    return _lfilter(b, a, x)


SR = 16000
FAMILIES = ("speech", "instrument", "noise", "impact")
TIMBRES = ("string", "flute", "mallet", "organ")
TEXTURES = ("rain", "wind", "engine")
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
VOWELS = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410), (660, 1720, 2410)]
SPLITS = {"pretrain": 320, "train": 192, "test": 96}


def _resonator(x: np.ndarray, freq: float, bw: float) -> np.ndarray:
    r = np.exp(-np.pi * bw / SR)
    a = [1.0, -2 * r * np.cos(2 * np.pi * freq / SR), r * r]
    return lfilter([1 - r], a, x)


def _speech(rng: np.random.Generator, n: int, f0_range: tuple[float, float] = (90, 260),
            rate: tuple[float, float] = (3, 6), formant_scale: float = 1.0) -> tuple[np.ndarray, list[str]]:
    """Syllables of formant-filtered glottal pulses; ``f0_range`` / ``rate`` / ``formant_scale`` set the
    speaker (the defaults are the basic corpus' population; the varied corpus fixes one per speaker)."""
    out = np.zeros(n)
    t = 0
    base_f0 = rng.uniform(*f0_range)
    while t < n:
        syl = int(SR / rng.uniform(*rate))
        if rng.random() < 0.15:  # pause
            t += int(syl * rng.uniform(0.5, 2))
            continue
        seg = min(syl, n - t)
        f0 = base_f0 * (1 + 0.15 * np.sin(np.linspace(0, rng.uniform(1, 3), seg)) * rng.choice([-1, 1]))
        phase = np.cumsum(f0 / SR)
        pulses = (np.diff(np.floor(phase), prepend=0) > 0).astype(float)
        src = lfilter([1.0], [1, -0.97], pulses) + 0.02 * rng.standard_normal(seg)
        f1, f2, f3 = VOWELS[rng.integers(len(VOWELS))]
        s = sum(_resonator(src, f * formant_scale * rng.uniform(0.9, 1.1), 80 + 40 * i) * g
                for i, (f, g) in enumerate(((f1, 1.0), (f2, 0.6), (f3, 0.3))))
        env = np.sin(np.linspace(0, np.pi, seg)) ** 0.7
        out[t:t + seg] += s * env
        t += seg
    return out, ["family=speech"]


def _instrument(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[str]]:
    timbre = TIMBRES[rng.integers(len(TIMBRES))]
    pc = int(rng.integers(12))
    out = np.zeros(n)
    t = 0
    while t < n:
        dur = min(int(SR * rng.uniform(0.3, 1.2)), n - t)
        midi = 12 * int(rng.integers(4, 7)) + pc
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        tt = np.arange(dur) / SR
        if timbre == "string":
            parts = [(k, 1 / k) for k in range(1, 12)]
            env = np.minimum(tt / 0.08, 1) * np.exp(-tt * 0.8)
        elif timbre == "flute":
            parts = [(1, 1.0), (2, 0.25), (3, 0.1)]
            env = np.minimum(tt / 0.05, 1) * (1 - 0.1 * tt)
        elif timbre == "mallet":
            parts = [(1, 1.0), (2.76, 0.5), (5.4, 0.25), (8.93, 0.12)]
            env = np.exp(-tt * 6)
        else:
            parts = [(k, 1 / k) for k in range(1, 10, 2)]
            env = np.ones(dur)
        vib = 1 + (0.006 * np.sin(2 * np.pi * 5.5 * tt) if timbre == "flute" else 0)
        note = sum(g * np.sin(2 * np.pi * f0 * k * np.cumsum(vib) / SR) for k, g in parts if f0 * k < 7600)
        out[t:t + dur] += note * env * np.minimum(1, (dur - np.arange(dur)) / 160)
        t += dur + int(SR * rng.uniform(0, 0.2))
    return out, ["family=instrument", f"timbre={timbre}", f"pitch={PITCH_CLASSES[pc]}"]


def _noise(rng: np.random.Generator, n: int, texture: str | None = None) -> tuple[np.ndarray, list[str]]:
    """A noise texture: drawn from the RNG, or ``texture`` (the draw is still made, so the stream is the same)."""
    tex = TEXTURES[rng.integers(len(TEXTURES))]
    tex = texture or tex
    w = rng.standard_normal(n)
    if tex == "rain":
        x = lfilter([1, -1], [1, -0.5], w) * 0.3
        drops = np.zeros(n)
        idx = rng.integers(0, n, size=int(rng.uniform(20, 80) * n / SR))
        drops[idx] = rng.uniform(0.5, 2, size=idx.size)
        x = x + _resonator(drops, rng.uniform(2000, 5000), 300)
    elif tex == "wind":
        x = lfilter([1], [1, -0.995], w) * 0.05
        x *= 1 + 0.8 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * np.arange(n) / SR + rng.uniform(0, 6))
    else:
        rot = rng.uniform(20, 60)
        tt = np.arange(n) / SR
        x = sum(np.sin(2 * np.pi * rot * k * tt) / k for k in range(1, 8)) + 0.3 * lfilter([1], [1, -0.98], w) * 0.1
    return x, ["family=noise", f"texture={tex}"]


def _impact(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[str]]:
    exc = np.zeros(n)
    t = int(rng.integers(0, SR // 2))
    while t < n:
        exc[t] = rng.uniform(0.3, 1.0)
        t += int(SR * rng.exponential(0.5)) + 800
    modes = rng.uniform(150, 3000, size=3)
    x = sum(_resonator(exc, f, rng.uniform(10, 60)) for f in modes) + lfilter([1], [1, -0.9], exc) * 0.5
    return x, ["family=impact"]


GENERATORS = {"speech": _speech, "instrument": _instrument, "noise": _noise, "impact": _impact}


def make_clip(seed: int, split: str, index: int, seconds: float = 10.0) -> tuple[np.ndarray, list[str]]:
    """One deterministic clip: family cycles with ``index``, everything else from the seeded RNG."""
    split_id = sorted(SPLITS).index(split) if split in SPLITS else 99
    rng = np.random.default_rng([seed, split_id, index])
    n = int(seconds * SR)
    fam = FAMILIES[index % len(FAMILIES)]
    x, labels = GENERATORS[fam](rng, n)
    x = x - x.mean()
    x = x / (np.abs(x).max() + 1e-9) * 10 ** (rng.uniform(-26, -3) / 20)
    x = x + 10 ** (-60 / 20) * rng.standard_normal(n)  # faint floor: like a real recording
    return x.astype(np.float32), labels


def write_corpus(root: str, seed: int = 0, sizes: dict[str, int] | None = None, seconds: float = 10.0,
                 clip_fn: Callable[[int, str, int, float], tuple[np.ndarray, list[str]]] = make_clip,
                 families: tuple[str, ...] = FAMILIES) -> str:
    """Write the corpus as WAV files under ``root/<split>/<family>/`` plus ``root/labels.csv``.

    ``clip_fn(seed, split, index, seconds)`` makes clip ``index`` of family ``families[index % len]``
    (``make_clip`` here; the varied corpus passes its own).  Existing files are kept (the content is a
    pure function of seed/split/index).  Returns the labels CSV path.
    """
    sizes = dict(SPLITS if sizes is None else sizes)
    rows = []
    for split, count in sizes.items():
        for i in range(count):
            rel = os.path.join(split, families[i % len(families)], f"{split}_{i:05d}.wav")
            path = os.path.join(root, rel)
            x, labels = clip_fn(seed, split, i, seconds)
            if not os.path.exists(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                tmp = path + ".tmp.wav"
                encode_wav(tmp, x)
                os.replace(tmp, path)
            rows.append((rel, ";".join(labels)))
    csv_path = os.path.join(root, "labels.csv")
    with open(csv_path + ".tmp", "w") as f:
        f.write("path,label\n")
        f.writelines(f"{r},{lab}\n" for r, lab in rows)
    os.replace(csv_path + ".tmp", csv_path)
    return csv_path


# ---------------------------------------------------------------- a realistic-looking corpus (benchmarks)

SCENES = ("speech", "music", "band", "street", "speech_over_music")


def _drums(rng: np.random.Generator, n: int) -> np.ndarray:
    """Kick (decaying low sine sweep), snare (noise burst + body), hi-hat (high-passed noise) on a tempo grid."""
    out = np.zeros(n)
    beat = int(SR * 60 / rng.uniform(70, 160))
    for b, t in enumerate(range(int(rng.integers(0, beat)), n, beat // 2)):
        dur = min(int(0.25 * SR), n - t)
        tt = np.arange(dur) / SR
        if b % 4 == 0:
            hit = np.sin(2 * np.pi * np.cumsum(50 + 100 * np.exp(-tt * 30)) / SR) * np.exp(-tt * 12)
        elif b % 4 == 2:
            hit = (rng.standard_normal(dur) * 0.6 + np.sin(2 * np.pi * 190 * tt)) * np.exp(-tt * 20)
        else:
            hit = lfilter([1, -1], [1, -0.3], rng.standard_normal(dur)) * 0.3 * np.exp(-tt * 60)
        out[t:t + dur] += hit * rng.uniform(0.6, 1.0)
    return out


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """White, pink-ish or brown-ish noise (one-pole colouring), unit RMS."""
    w = rng.standard_normal(n)
    pole = float(rng.choice([0.0, 0.9, 0.99]))
    x = lfilter([1.0], [1.0, -pole], w) if pole else w
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def _reverb(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Convolution with an exponentially decaying noise tail, RT60 ~ U(0.2, 1.2) s, wet 20-60 %."""
    from scipy.signal import fftconvolve

    rt60 = rng.uniform(0.2, 1.2)
    m = int(rt60 * SR)
    ir = rng.standard_normal(m) * np.exp(-6.9 * np.arange(m) / m)  # -60 dB at rt60
    ir[0] = 0.0
    wet = fftconvolve(x, ir)[: x.size]
    wet *= np.sqrt(np.mean(x ** 2) / (np.mean(wet ** 2) + 1e-12))
    mix = rng.uniform(0.2, 0.6)
    return (1 - mix) * x + mix * wet


def _norm(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def make_realistic_clip(seed: int, index: int, seconds: float = 10.0) -> tuple[np.ndarray, str]:
    """A noisy, reverberant mixture like a real recording (for size and speed benchmarks, not for probes).

    Scenes cycle with ``index``: speech over background noise, music (two instruments + drums), a band
    (music + speech), a street (noise textures + impacts + speech), speech over music.  Every scene gets
    room reverb, a background noise at SNR ~ U(-5, 25) dB and a peak level ~ U(-20, -1) dB FS; peaks are
    soft-clipped as a cheap recorder would.  Deterministic in ``(seed, index)``.
    """
    rng = np.random.default_rng([seed, 7, index])
    n = int(seconds * SR)
    scene = SCENES[index % len(SCENES)]
    parts: list[np.ndarray] = []
    if scene in ("speech", "band", "street", "speech_over_music"):
        parts.append(_norm(_speech(rng, n)[0]))
    if scene in ("music", "band", "speech_over_music"):
        parts += [_norm(_instrument(rng, n)[0]) * rng.uniform(0.3, 1.0) for _ in range(2)]
        parts.append(_norm(_drums(rng, n)) * rng.uniform(0.3, 1.0))
    if scene == "street":
        parts += [_norm(_noise(rng, n)[0]) * rng.uniform(0.3, 1.0), _norm(_impact(rng, n)[0]) * rng.uniform(0.2, 0.6)]
    x = _reverb(rng, sum(parts))
    x = _norm(x) + _background(rng, n) * 10 ** (-rng.uniform(-5, 25) / 20)
    x = np.tanh(1.5 * x / (np.abs(x).max() + 1e-9)) / np.tanh(1.5)  # soft clip
    x = x * 10 ** (rng.uniform(-20, -1) / 20)  # peak level: mastered music about -1 dB FS, field recordings lower
    return x.astype(np.float32), scene


def write_realistic_corpus(root: str, clips: int, seed: int = 0, seconds: float = 10.0) -> list[str]:
    """``clips`` realistic mixtures as WAV files ``root/<scene>/mix_<i>.wav`` (kept when present); their paths."""
    paths = []
    for i in range(clips):
        path = os.path.join(root, SCENES[i % len(SCENES)], f"mix_{i:05d}.wav")
        if not os.path.exists(path):
            x, _ = make_realistic_clip(seed, i, seconds)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            encode_wav(path + ".tmp.wav", x)
            os.replace(path + ".tmp.wav", path)
        paths.append(path)
    return paths
