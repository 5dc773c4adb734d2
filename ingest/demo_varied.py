"""The ``varied`` demo corpus: six sound families, parametric sources, nuisances, source-disjoint probes.

``python -m ingest demo --variant varied``.  10-s clips at 16 kHz, deterministic in (seed, split, index).
The basic corpus (ingest/demo.py) is clean and its labelled splits share generators, so random
encoders already score high there; here a probe must generalise to **unseen sources**:

* every family has ``N_SOURCES`` (8) parametric sources, each a fixed draw from ``(seed, family, k)``:
  ``speech`` -- a speaker (f0 range, formant scaling, syllable rate; reuses ``demo._speech``);
  ``instrument`` -- for each of six timbres, eight instrument "makes" (per-partial amplitude jitter,
  attack/decay scaling, inharmonicity, vibrato, a body resonance, a detuning of up to 25 cents);
  ``noise`` -- a texture of ``demo._noise`` (rain/wind/engine) with a source colouring;
  ``impact`` -- a material (mode frequency ratios, range and damping, click share, hit rate);
  ``bird`` -- a species (sweep shape and range, syllable length and count, trill, harmonic);
  ``alarm`` -- a siren, beep pattern or two-tone alarm with its own frequencies, timing and waveform.
* the labelled ``train`` split uses sources 0-3 of every family (of every timbre), ``test`` sources 4-7:
  disjoint speakers, instrument makes, materials, species (a draft with 6 train / 2 test sources and a
  milder tilt gave random ``audio_ntt`` features 0.87 on the family task; fewer train sources ask the
  probe to generalise further).  The unlabelled ``pretrain`` split draws from all eight (SSL on a
  broad corpus that also covers the downstream domain, as AudioSet covers ESC-50); it carries no
  ``source=`` label, so a supervised anchor cannot learn test identities.
* nuisances in every split: a background -- coloured noise (``demo._background``), a ``demo._noise``
  texture, or another family's sound from a source of the same split -- at SNR ~ U(0, 30) dB, room
  reverb (``demo._reverb``) on half the clips, a one-pole spectral tilt per clip (the microphone),
  peak ~ U(-30, -3) dB FS.

Families cycle with the index over ``SLOTS`` (instrument twice, so the timbre and pitch probes get
2/7 of the clips).  Labels: ``family=``; instruments add ``timbre=`` (6) and ``pitch=`` -- the note name
C4..B4 of the note played in ``LABEL_NOTE_P`` (60 %) of the clip's notes, the others being random notes
of the same octave: pitch height within one octave (12 classes), not the octave-invariant chroma of
the basic corpus, and a modal note rather than a constant tone (a draft with one repeated note gave
random features 0.70); labelled splits add
``source=<family>/<k>`` (instrument: ``instrument/<timbre>/<k>``).
"""
from __future__ import annotations

import numpy as np

from .demo import PITCH_CLASSES, SR, TEXTURES, _background, _noise, _resonator, _reverb, _speech, lfilter, write_corpus

FAMILIES = ("speech", "instrument", "noise", "impact", "bird", "alarm")
SLOTS = ("speech", "instrument", "noise", "impact", "instrument", "bird", "alarm")
TIMBRES = ("string", "flute", "mallet", "organ", "brass", "pluck")
N_SOURCES = 8
SOURCES = {"pretrain": tuple(range(8)), "train": (0, 1, 2, 3), "test": (4, 5, 6, 7)}
SPLITS = {"pretrain": 640, "train": 448, "test": 224}
SNR_DB = (0.0, 30.0)
PEAK_DB = (-30.0, -3.0)
REVERB_P = 0.5
LABEL_NOTE_P = 0.6  # share of an instrument clip's notes that are its labelled note
BG_KINDS = ("coloured", "texture", "family")  # background: coloured noise, a noise texture, another family
_SPLIT_ID = {"pretrain": 11, "train": 12, "test": 13}


def _src_rng(seed: int, family: str, k: int, sub: int = 0) -> np.random.Generator:
    """The RNG of one source: fixed by (seed, family, sub, k), independent of split and clip."""
    return np.random.default_rng([seed, 4242, FAMILIES.index(family), sub, k])


# ---------------------------------------------------------------- families (one source each)

def _speech_v(rng: np.random.Generator, n: int, src: np.random.Generator) -> np.ndarray:
    low = src.random() < 0.5  # a low (95-140 Hz) or a high (170-260 Hz) voice, vocal tract to match
    f0 = src.uniform(95, 140) if low else src.uniform(170, 260)
    scale = src.uniform(0.88, 1.0) if low else src.uniform(1.02, 1.2)
    rate = src.uniform(3, 5.5)
    return _speech(rng, n, f0_range=(0.9 * f0, 1.1 * f0), rate=(rate - 0.7, rate + 0.7), formant_scale=scale)[0]


def _make(seed: int, timbre: str, k: int) -> dict:
    """An instrument make: partial ratios/amplitudes, envelope times, vibrato and body of one timbre."""
    src = _src_rng(seed, "instrument", k, 1 + TIMBRES.index(timbre))
    if timbre == "string":
        ratios, amps, att, dec = np.arange(1, 16), 1 / np.arange(1, 16), 0.08, 0.8
    elif timbre == "flute":
        ratios, amps, att, dec = np.arange(1, 4), np.array([1.0, 0.25, 0.1]), 0.05, 0.1
    elif timbre == "mallet":
        ratios, amps, att, dec = np.array([1.0, 3.9, 9.2]), np.array([1.0, 0.4, 0.15]), 0.002, 6.0
    elif timbre == "organ":
        ratios, amps, att, dec = np.arange(1, 10, 2), 1 / np.arange(1, 10, 2), 0.02, 0.0
    elif timbre == "brass":
        ratios, amps, att, dec = np.arange(1, 13), np.arange(1, 13) ** -0.5, 0.06, 0.3
    else:  # pluck
        ratios, amps, att, dec = np.arange(1, 21), 1 / np.arange(1, 21), 0.003, 3.0
    ratios = ratios.astype(float)
    if timbre == "mallet":
        ratios = ratios * src.uniform(0.95, 1.05, ratios.size) ** (ratios > 1)
    return {"timbre": timbre, "ratios": ratios, "amps": amps * np.exp(0.6 * src.standard_normal(amps.size)),
            "attack": att * np.exp(src.uniform(-1.1, 1.1)), "decay": dec * np.exp(src.uniform(-1.1, 1.1)),
            "inharm": src.uniform(0, 3e-4), "vib_rate": src.uniform(4, 7),
            "vib_depth": (0.006 if timbre in ("flute", "string") else 0.0) * src.uniform(0.5, 1.5),
            "body_f": src.uniform(300, 4000), "body_g": src.uniform(0, 3.0), "cents": src.uniform(-25, 25)}


def _note(m: dict, f0: float, dur: int) -> np.ndarray:
    tt = np.arange(dur) / SR
    vib = 1 + m["vib_depth"] * np.sin(2 * np.pi * m["vib_rate"] * tt)
    phase = 2 * np.pi * np.cumsum(vib) / SR
    out = np.zeros(dur)
    for j, (r, a) in enumerate(zip(m["ratios"], m["amps"])):
        f = f0 * r * np.sqrt(1 + m["inharm"] * r * r)  # stiff-string stretch (Fletcher & Rossing 1998, s. 2.18)
        if f >= 7600:
            break
        if m["timbre"] == "pluck":  # higher partials die faster
            env = np.exp(-tt * m["decay"] * (1 + 0.5 * j))
        elif m["timbre"] == "brass":  # brightness grows after the attack
            env = np.exp(-tt * m["decay"]) * np.minimum(1, tt / (m["attack"] * (1 + j)))
        else:
            env = np.exp(-tt * m["decay"])
        out += a * env * np.sin(f * phase)
    out *= np.minimum(tt / m["attack"], 1) * np.minimum(1, (dur - np.arange(dur)) / 160)
    return out


def _instrument_v(rng: np.random.Generator, n: int, m: dict, midi: int) -> np.ndarray:
    """Notes of one make: ``midi`` with probability ``LABEL_NOTE_P``, else another note of its octave."""
    out = np.zeros(n)
    t = int(rng.integers(0, SR // 4))
    octave = 12 * (midi // 12)
    f0 = 440.0
    while t < n:
        note = midi if rng.random() < LABEL_NOTE_P else octave + int(rng.integers(12))
        f0 = 440.0 * 2 ** ((note - 69 + m["cents"] / 100) / 12)
        dur = min(int(SR * rng.uniform(0.25, 1.0)), n - t)
        out[t:t + dur] += _note(m, f0, dur) * rng.uniform(0.5, 1.0)
        t += dur + int(SR * rng.uniform(0, 0.3))
    if m["timbre"] == "flute":
        out += 0.03 * _resonator(rng.standard_normal(n), 2 * f0, 200) * (np.abs(out) > 0.05)  # breath
    return out + m["body_g"] * _resonator(out, m["body_f"], 300)


def _noise_v(rng: np.random.Generator, n: int, src: np.random.Generator) -> np.ndarray:
    x, _ = _noise(rng, n, TEXTURES[int(src.integers(len(TEXTURES)))])
    pole = src.uniform(-0.6, 0.9)  # source colouring: brighter or darker
    return _resonator(lfilter([1.0], [1.0, -pole], x), src.uniform(300, 4000), src.uniform(200, 1500)) + x


def _impact_v(rng: np.random.Generator, n: int, src: np.random.Generator) -> np.ndarray:
    base = np.exp(src.uniform(np.log(150), np.log(2500)))
    ratios = np.sort(src.uniform(1, 6, size=int(src.integers(2, 6))))
    ratios[0] = 1.0
    bw, click, gap = src.uniform(5, 150), src.uniform(0.1, 1.0), src.uniform(0.2, 1.0)
    exc = np.zeros(n)
    t = int(rng.integers(0, SR // 2))
    while t < n:
        exc[t] = rng.uniform(0.3, 1.0)
        t += int(SR * rng.exponential(gap)) + 800
    f = base * rng.uniform(0.95, 1.05)
    x = sum(_resonator(exc, min(f * r, 7500), bw * r ** 0.5) / r ** 0.5 for r in ratios)
    return x + click * lfilter([1], [1, -0.8], exc * rng.uniform(0.5, 1.5, size=n))


def _bird_v(rng: np.random.Generator, n: int, src: np.random.Generator) -> np.ndarray:
    shape = ("up", "down", "updown", "trill")[int(src.integers(4))]
    f_lo = src.uniform(1800, 5000)
    span, syl_s, n_syl = src.uniform(0.2, 1.2), src.uniform(0.03, 0.2), int(src.integers(2, 9))
    trill, harm, gap_s = src.uniform(20, 60), src.uniform(0, 0.3), src.uniform(0.02, 0.1)
    out = np.zeros(n)
    t = int(rng.integers(0, SR))
    while t < n:
        for _ in range(n_syl + int(rng.integers(-1, 2))):
            dur = min(int(SR * syl_s * rng.uniform(0.8, 1.2)), n - t)
            if dur <= 0:
                break
            u = np.linspace(0, 1, dur)
            sweep = {"up": u, "down": 1 - u, "updown": 1 - np.abs(2 * u - 1), "trill": 0.5 + 0.5 * np.sin(2 * np.pi * trill * u * syl_s)}[shape]
            f = f_lo * 2 ** (span * sweep) * rng.uniform(0.95, 1.05)
            ph = 2 * np.pi * np.cumsum(f) / SR
            tone = np.sin(ph) + harm * np.sin(2 * ph) * (2 * f < 7800)
            out[t:t + dur] += tone * np.sin(np.pi * u) ** 2
            t += dur + int(SR * gap_s)
        t += int(SR * rng.uniform(0.4, 2.0))
    return out


def _alarm_v(rng: np.random.Generator, n: int, src: np.random.Generator) -> np.ndarray:
    kind = ("siren", "beeps", "twotone")[int(src.integers(3))]
    f1 = src.uniform(500, 3000)
    f2 = f1 * src.uniform(1.2, 2.0)
    period, duty, n_harm = src.uniform(0.2, 3.0), src.uniform(0.3, 0.7), int(src.integers(1, 6))
    tt = np.arange(n) / SR + rng.uniform(0, period)
    cyc = (tt / period) % 1.0
    if kind == "siren":
        f = f1 + (f2 - f1) * (0.5 - 0.5 * np.cos(2 * np.pi * cyc))
        gate = np.ones(n)
    elif kind == "beeps":
        f, gate = np.full(n, f1), (cyc < duty).astype(float)
    else:
        f, gate = np.where(cyc < 0.5, f1, f2), np.ones(n)
    ph = 2 * np.pi * np.cumsum(f * rng.uniform(0.98, 1.02)) / SR
    x = sum(np.sin(k * ph) / k * (k * f < 7800) for k in range(1, 2 * n_harm, 2))  # odd harmonics: square-ish
    return x * lfilter([0.02], [1, -0.98], gate)  # soft gate edges


def _norm(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def mix_at_snr(fg: np.ndarray, bg: np.ndarray, snr_db: float) -> np.ndarray:
    """``fg + g * bg`` with ``g`` such that 10 log10(P_fg / P_(g bg)) = ``snr_db`` (powers = mean squares);
    a silent foreground (a clip shorter than its sound's onset) counts as power 1."""
    p_fg = float(np.mean(fg ** 2)) or 1.0
    g = np.sqrt(p_fg / (np.mean(bg ** 2) + 1e-20) / 10 ** (snr_db / 10))
    return fg + g * bg


def source_of(split: str, index: int) -> int:
    """The source of clip ``index``: cycles over the split's sources once per round of ``SLOTS`` (the
    instrument slots cycle over timbres first, then sources)."""
    slot = index % len(SLOTS)
    turn = index // len(SLOTS)
    if SLOTS[slot] == "instrument":
        turn = (2 * turn + (slot == 4)) // len(TIMBRES)
    srcs = SOURCES[split] if split in SOURCES else SOURCES["pretrain"]
    return srcs[turn % len(srcs)]


def _foreground(rng: np.random.Generator, seed: int, n: int, fam: str, k: int,
                timbre: str = "", midi: int = 60) -> np.ndarray:
    """One sound of family ``fam`` from its source ``k`` (instrument: of ``timbre``, around note ``midi``)."""
    if fam == "instrument":
        return _instrument_v(rng, n, _make(seed, timbre, k), midi)
    gen = {"speech": _speech_v, "noise": _noise_v, "impact": _impact_v, "bird": _bird_v, "alarm": _alarm_v}[fam]
    return gen(rng, n, _src_rng(seed, fam, k))


def render(seed: int, split: str, index: int, seconds: float = 10.0) -> tuple[np.ndarray, list[str], dict]:
    """Clip ``index`` of ``split``: (float32 audio, labels, info with source, background, snr_db, reverb,
    peak_db).  A background of another family comes from a source of the same split (test stays unseen)."""
    rng = np.random.default_rng([seed, _SPLIT_ID.get(split, 99), index])
    n = int(seconds * SR)
    slot = index % len(SLOTS)
    fam = SLOTS[slot]
    k = source_of(split, index)
    labels = [f"family={fam}"]
    if fam == "instrument":
        timbre = TIMBRES[(2 * (index // len(SLOTS)) + (slot == 4)) % len(TIMBRES)]
        pc = int(rng.integers(12))
        fg = _foreground(rng, seed, n, fam, k, timbre, 60 + pc)
        labels += [f"timbre={timbre}", f"pitch={PITCH_CLASSES[pc]}4"]
        src_name = f"instrument/{timbre}/{k}"
    else:
        fg = _foreground(rng, seed, n, fam, k)
        src_name = f"{fam}/{k}"
    if split in ("train", "test"):
        labels.append(f"source={src_name}")
    fg = _norm(fg - fg.mean())
    reverb = bool(rng.random() < REVERB_P)
    if reverb:
        fg = _norm(_reverb(rng, fg))
    bg_kind = BG_KINDS[int(rng.integers(len(BG_KINDS)))]
    if bg_kind == "coloured":
        bg = _background(rng, n)
    elif bg_kind == "texture":
        bg = _norm(_noise(rng, n)[0])
    else:
        other = [f for f in FAMILIES if f != fam]
        bfam = other[int(rng.integers(len(other)))]
        srcs = SOURCES.get(split, SOURCES["pretrain"])
        bk = srcs[int(rng.integers(len(srcs)))]
        bg = _foreground(rng, seed, n, bfam, bk, TIMBRES[int(rng.integers(len(TIMBRES)))], 48 + int(rng.integers(36)))
        bg_kind = f"family:{bfam}/{bk}"
        if not np.any(bg):  # a short clip before the other sound's onset: coloured noise instead
            bg, bg_kind = _background(rng, n), "coloured"
    snr = float(rng.uniform(*SNR_DB))
    x = mix_at_snr(fg, _norm(bg - bg.mean()), snr)
    tilt = float(rng.uniform(-0.85, 0.85))  # the microphone / channel: a one-pole spectral tilt per clip
    x = lfilter([1.0], [1.0, -tilt], x) if tilt > 0 else lfilter([1.0, tilt], [1.0], x)
    peak = float(rng.uniform(*PEAK_DB))
    x = x / (np.abs(x).max() + 1e-12) * 10 ** (peak / 20)
    info = {"source": src_name, "background": bg_kind, "snr_db": snr, "reverb": reverb, "tilt": tilt, "peak_db": peak}
    return x.astype(np.float32), labels, info


def make_clip(seed: int, split: str, index: int, seconds: float = 10.0) -> tuple[np.ndarray, list[str]]:
    """:func:`render` without the info (the signature ``demo.write_corpus`` expects)."""
    x, labels, _ = render(seed, split, index, seconds)
    return x, labels


def write_varied_corpus(root: str, seed: int = 0, sizes: dict[str, int] | None = None, seconds: float = 10.0) -> str:
    """WAVs under ``root/<split>/<family>/`` plus ``root/labels.csv`` (``demo.write_corpus``); the CSV path."""
    return write_corpus(root, seed=seed, sizes=dict(SPLITS if sizes is None else sizes), seconds=seconds,
                        clip_fn=make_clip, families=SLOTS)
