"""Build the third-party audio corpus of `make bench-real` (docs/bench-real.md).

Every sound comes from a Debian package whose content other people made:

- ``espeak-ng`` (voices and languages: speech tasks and pretraining speech),
- ``fluidsynth`` + a General-MIDI soundfont (``fluid-soundfont-gm``; ``--tiny``: ``timgm6mb-soundfont``)
  rendering MIDI phrases and single notes written here (instrument family, pitch class, GM drum kits),
- ``hydrogen-drumkits`` (real drum-kit samples: drum type, pretraining beats),
- ``sound-theme-freedesktop`` (real recorded desktop sounds: pretraining).

Layout under ``--out`` (default ``data/real_audio``)::

    pretrain/<kind>/*.wav            unlabelled 10-s clips (ingest with `python -m ingest folder`)
    tasks/<task>.csv                 path,label,split,source (paths relative to tasks/)
    tasks/<task>/<split>/*.wav       (the instrument and pitch tasks share tasks/notes/<split>/)
    corpus.json                      packages and versions, counts, the pretraining clips' sources

Sources (``source``: voice, language, program or kit) of a task's train and test splits are disjoint,
and no test source of any task is in the pretraining set.  Deterministic: the same package versions give
the same bytes (every random draw is seeded by the clip's name).  The corpus is built in
``<out>.partial`` and renamed into place when complete; an existing corpus is never overwritten.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NoReturn

import numpy as np
import soundfile as sf

SR = 16000
FLUID_SF2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
TIM_SF2 = "/usr/share/sounds/sf2/TimGM6mb.sf2"
HYDROGEN = "/usr/share/hydrogen/data/drumkits"
THEME = "/usr/share/sounds/freedesktop/stereo"
PACKAGES = {"full": ["espeak-ng", "espeak-ng-data", "fluidsynth", "fluid-soundfont-gm", "hydrogen-drumkits",
                     "sound-theme-freedesktop"],
            "tiny": ["espeak-ng", "espeak-ng-data", "fluidsynth", "timgm6mb-soundfont"]}

# GM families (program = 8 * index + offset); train programs use offsets 0,2,4,6, test 1,3,5,7
FAMILIES = ["piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass", "reed", "pipe"]
TRAIN_OFFSETS, TEST_OFFSETS = (0, 2, 4, 6), (1, 3, 5, 7)
# GM percussion keys -> drum type
GM_DRUMS = {"kick": (35, 36), "snare": (38, 40), "hihat": (42, 44, 46), "tom": (41, 43, 45, 47, 48, 50),
            "cymbal": (49, 51, 52, 55, 57, 59)}
GM_KITS_TRAIN, GM_KITS_TEST = (0, 16, 25, 40), (8, 24, 32, 48)
DRUM_WORDS = [("kick", ("kick", "bass drum", "bassdrum", "bd_", "bd ")), ("snare", ("snare",)),
              ("hihat", ("hh", "hat")), ("tom", ("tom",)), ("cymbal", ("crash", "ride", "cymbal", "splash", "china"))]
KEYWORDS = ["yes", "no", "up", "down", "left", "right", "stop", "go", "on", "off"]
ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-029"]
LANGS = ["en-us", "fr-fr", "de", "es", "it", "pt", "nl", "pl", "ru", "tr"]   # language task classes
SPEAKER_TEST_LANGS = ["fi", "hu", "cs", "da"]                                 # never in pretraining
PRETRAIN_EXTRA_LANGS = ["el", "ro", "hi", "id", "vi", "cmn", "ja", "ko", "sw", "af", "sv", "uk"]


@dataclass
class Size:
    """How many clips of each kind (``full`` / ``tiny``)."""

    voices_train: int
    voices_test: int
    speakers: int
    langs: list[str]
    speaker_test_langs: list[str]
    per_lang_voice: int
    notes_per_program: int
    families: list[str]
    hits_per_class: int
    pretrain: dict[str, int] = field(default_factory=dict)
    clip_s: float = 10.0
    sf2: str = FLUID_SF2
    hydrogen: bool = True
    keywords: int = len(KEYWORDS)
    accents: int = len(ACCENTS)
    gm_kits: int = len(GM_KITS_TRAIN)
    programs: int = len(TRAIN_OFFSETS)  # programs per family and split


SIZES = {
    "full": Size(24, 12, 12, LANGS, SPEAKER_TEST_LANGS, 2, 12, FAMILIES, 8,
                 {"speech": 260, "music": 260, "drums": 130, "mix": 120}),
    "tiny": Size(3, 2, 2, LANGS[:2], SPEAKER_TEST_LANGS[:1], 1, 2, FAMILIES[:2], 2,
                 {"speech": 2, "music": 2, "drums": 1, "mix": 1}, clip_s=2.0, sf2=TIM_SF2, hydrogen=False,
                 keywords=2, accents=1, gm_kits=1, programs=2),
}


def rng_for(*name: object) -> np.random.Generator:
    """A generator seeded by the clip's name: the same draws whatever the build order."""
    h = hashlib.sha1("/".join(map(str, name)).encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


def fail(what: str, why: str) -> NoReturn:
    print(f"error: {what}: {why}", file=sys.stderr)
    raise SystemExit(2)


def need(path: str, package: str) -> str:
    if not os.path.exists(path):
        fail(path, f"missing; install the Debian package {package} (`make bench-real` does)")
    return path


# ---------------------------------------------------------------- audio helpers
_KERNELS: dict[int, np.ndarray] = {}


def resample(x: np.ndarray, sr: int, taps: int = 16) -> np.ndarray:
    """``x`` at ``sr`` Hz -> :data:`SR`: Kaiser-windowed (beta 8) sinc interpolation over ``2 * taps`` input
    samples, cut-off 0.95 x the lower Nyquist; the polyphase table is built once per rate.  Plain numpy, so
    the bytes do not depend on a library's resampler (and the build does not import torch)."""
    x = np.asarray(x, np.float64)
    if sr == SR or not len(x):
        return x.astype(np.float32)
    g = math.gcd(sr, SR)
    up, down = SR // g, sr // g
    cut = 0.95 * min(1.0, up / down)
    js = np.arange(-taps + 1, taps + 1)
    if sr not in _KERNELS:
        d = js[None, :] - (np.arange(up) / up)[:, None]
        _KERNELS[sr] = cut * np.sinc(cut * d) * np.i0(8.0 * np.sqrt(np.clip(1 - (d / (taps + 1)) ** 2, 0, 1))) / np.i0(8.0)
    table = _KERNELS[sr]
    pos = np.arange(int(np.ceil(len(x) * up / down)), dtype=np.int64) * down
    base, phase = pos // up, pos % up
    pad = np.concatenate([np.zeros(taps), x, np.zeros(taps + 1)])
    out = np.zeros(len(pos))
    for i, j in enumerate(js):
        out += pad[base + j + taps] * table[phase, i]
    return out.astype(np.float32)


def read_audio(path: str) -> np.ndarray:
    """A packaged sound file, mono at :data:`SR`; an unreadable one ends the build with one ``error:`` line."""
    try:
        x, sr = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as e:  # soundfile's LibsndfileError is a RuntimeError
        fail(path, f"cannot decode: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    return resample(x.mean(axis=1), sr)


def fit(x: np.ndarray, seconds: float) -> np.ndarray:
    n = int(round(seconds * SR))
    return x[:n] if len(x) >= n else np.concatenate([x, np.zeros(n - len(x), np.float32)])


def write(path: str, x: np.ndarray, peak: float = 0.9) -> None:
    m = float(np.max(np.abs(x))) if len(x) else 0.0
    if m > peak:
        x = x * (peak / m)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, np.asarray(x, np.float32), SR, subtype="PCM_16", format="WAV")


def run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    if r.returncode != 0:
        fail(cmd[0], f"exit {r.returncode}: {r.stderr.decode(errors='replace').strip()[:200]}")


# ---------------------------------------------------------------- speech (espeak-ng)
def variants(n: int) -> list[str]:
    """The espeak-ng voice variants, in a fixed order (sorted by the sha1 of the name)."""
    d = "/usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/!v"
    if not os.path.isdir(d):
        d = need("/usr/share/espeak-ng-data/voices/!v", "espeak-ng-data")
    names = sorted(os.listdir(d), key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    if len(names) < n:
        fail(d, f"{len(names)} voice variants, need {n}")
    return names[:n]


def speak(text: str, lang: str, voice: str, r: np.random.Generator, tmp: str) -> np.ndarray:
    out = os.path.join(tmp, hashlib.sha1(f"{lang}{voice}{text}".encode()).hexdigest() + ".wav")
    run(["espeak-ng", "-v", f"{lang}+{voice}", "-s", str(int(r.integers(130, 200))), "-p", str(int(r.integers(25, 75))),
         "-w", out, text])
    x = read_audio(out)
    os.remove(out)
    return x


def numbers(r: np.random.Generator, k: int) -> str:
    return " ".join(str(int(r.integers(2, 99999))) for _ in range(k))


# ---------------------------------------------------------------- MIDI + fluidsynth
TPS = 960  # ticks per second: division 480 at the default 120 bpm


def midi_file(events: list[tuple[float, bytes]]) -> bytes:
    """A format-0 standard MIDI file of (seconds, message) events."""
    def vlq(n: int) -> bytes:
        b = [n & 0x7F]
        n >>= 7
        while n:
            b.append((n & 0x7F) | 0x80)
            n >>= 7
        return bytes(reversed(b))

    body, last = b"", 0
    for t, msg in sorted(events, key=lambda e: (int(round(e[0] * TPS)), e[1][0] & 0xF0 != 0x80)):
        tick = int(round(t * TPS))
        body += vlq(tick - last) + msg
        last = tick
    body += vlq(0) + b"\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(body)) + body


def note(ch: int, t: float, dur: float, key: int, vel: int) -> list[tuple[float, bytes]]:
    return [(t, bytes([0x90 | ch, key, vel])), (t + dur, bytes([0x80 | ch, key, 0]))]


def render(events: list[tuple[float, bytes]], sf2: str, tmp: str, name: str) -> np.ndarray:
    mid, wav = os.path.join(tmp, name + ".mid"), os.path.join(tmp, name + ".wav")
    with open(mid, "wb") as f:
        f.write(midi_file(events))
    run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(SR), "-O", "float", "-T", "wav", "-F", wav, sf2, mid])
    x, sr = sf.read(wav, dtype="float32", always_2d=True)
    os.remove(mid)
    os.remove(wav)
    return resample(x.mean(axis=1), sr)


def program(fam: str, off: int) -> int:
    """The GM program number of ``fam``'s ``off``-th instrument."""
    return 8 * FAMILIES.index(fam) + off


# ---------------------------------------------------------------- drums
def drum_class(name: str) -> str | None:
    n = " " + name.lower().replace("-", " ") + " "
    for cls, words in DRUM_WORDS:
        if any(w in n for w in words):
            return cls
    return None


def hydrogen_kits() -> dict[str, dict[str, list[str]]]:
    """kit -> drum type -> sample files, for the kits with at least 4 of the 5 types."""
    kits: dict[str, dict[str, list[str]]] = {}
    for kit in sorted(os.listdir(need(HYDROGEN, "hydrogen-drumkits"))):
        xml = os.path.join(HYDROGEN, kit, "drumkit.xml")
        try:
            root = ET.parse(xml).getroot()
        except (OSError, ET.ParseError) as e:
            print(f"skip kit {kit}: {e}", file=sys.stderr)
            continue
        types: dict[str, list[str]] = {}
        for inst in root.iter():
            if not inst.tag.endswith("instrument"):
                continue
            nm = next((c.text or "" for c in inst if c.tag.endswith("name")), "")
            cls = drum_class(nm)
            files = sorted({(e.text or "").strip() for e in inst.iter() if e.tag.endswith("filename") and e.text})
            paths = [os.path.join(HYDROGEN, kit, f) for f in files if os.path.isfile(os.path.join(HYDROGEN, kit, f))]
            if cls and paths:
                types.setdefault(cls, []).extend(paths)
        if len(types) >= 4:
            kits[kit] = {k: sorted(v) for k, v in sorted(types.items())}
    return kits


def split_kits(kits: list[str]) -> tuple[list[str], list[str]]:
    """Every third kit (sorted) is a test kit."""
    return [k for i, k in enumerate(kits) if i % 3 != 1], [k for i, k in enumerate(kits) if i % 3 == 1]


# ---------------------------------------------------------------- the build
class Builder:
    def __init__(self, out: str, size: Size, tmp: str, workers: int) -> None:
        self.out, self.z, self.tmp, self.workers = out, size, tmp, workers
        self.rows: dict[str, list[tuple[str, str, str, str]]] = {}
        self.pretrain_sources: dict[str, list[str]] = {}
        vs = variants(size.voices_train + size.voices_test)
        self.v_train, self.v_test = vs[:size.voices_train], vs[size.voices_train:]
        self.kits = hydrogen_kits() if size.hydrogen else {}
        self.k_train, self.k_test = split_kits(sorted(self.kits))
        self.cache: dict[str, np.ndarray] = {}

    def add(self, task: str, split: str, label: str, source: str, x: np.ndarray | None, name: str,
            folder: str | None = None) -> None:
        """A task row; the clip is written to ``tasks/<folder or task>/<split>/<name>.wav`` unless ``x`` is None
        (a clip another task already wrote there)."""
        rel = f"{folder or task}/{split}/{name}.wav"
        if x is not None:
            write(os.path.join(self.out, "tasks", rel), x)
        self.rows.setdefault(task, []).append((rel, label, split, source))

    def sample(self, path: str) -> np.ndarray:
        if path not in self.cache:
            self.cache[path] = read_audio(path)
        return self.cache[path]

    # ---- speech tasks
    def speech_tasks(self) -> None:
        z = self.z
        for split, voices in (("train", self.v_train), ("test", self.v_test)):
            for v in voices:
                for lang in z.langs:
                    for i in range(z.per_lang_voice):
                        r = rng_for("language", v, lang, i)
                        self.add("real_language", split, lang, f"voice:{v}", fit(speak(numbers(r, 3), lang, v, r, self.tmp),
                                                                                4.0), f"{lang}_{v}_{i}")
                for w in KEYWORDS[:z.keywords]:
                    for acc in ACCENTS[:z.accents]:
                        r = rng_for("keyword", v, w, acc)
                        self.add("real_keyword", split, w, f"voice:{v}", fit(speak(w, acc, v, r, self.tmp), 1.5),
                                 f"{w}_{acc}_{v}")
        # speaker identity: the train voices; train languages vs held-out test languages
        for split, langs, k in (("train", z.langs, z.per_lang_voice), ("test", z.speaker_test_langs, 3)):
            for v in self.v_train[:z.speakers]:
                for lang in langs:
                    for i in range(k):
                        r = rng_for("speaker", v, lang, i)
                        self.add("real_speaker", split, v, f"lang:{lang}", fit(speak(numbers(r, 3), lang, v, r, self.tmp),
                                                                              4.0), f"{v}_{lang}_{i}")

    # ---- instrument family + pitch class (GM soundfont notes)
    def note_tasks(self) -> None:
        z = self.z

        def one(job: tuple[str, str, int]) -> tuple[str, str, int, np.ndarray, list]:
            split, fam, off = job
            prog = program(fam, off)
            r = rng_for("notes", z.sf2, prog)
            lo, hi = (28, 56) if fam == "bass" else (48, 84)
            keys = [int(k) for k in r.integers(lo, hi, z.notes_per_program)]
            ev = [(0.0, bytes([0xC0, prog]))]
            for i, k in enumerate(keys):
                ev += note(0, 0.1 + 2.0 * i, 1.4, k, int(r.integers(70, 120)))
            return split, fam, prog, render(ev, z.sf2, self.tmp, f"notes{prog}"), keys

        jobs = [(s, fam, off) for s, offs in (("train", TRAIN_OFFSETS), ("test", TEST_OFFSETS))
                for fam in z.families for off in offs[:z.programs]]
        with ThreadPoolExecutor(self.workers) as ex:
            for split, fam, prog, x, keys in ex.map(one, jobs):
                for i, k in enumerate(keys):
                    clip = fit(x[int(2.0 * i * SR):], 2.0)
                    src = f"program:{os.path.basename(z.sf2)}:{prog}"
                    self.add("real_instrument", split, fam, src, clip, f"p{prog:03d}_{i}", "notes")
                    self.add("real_pitch", split, "C C# D D# E F F# G G# A A# B".split()[k % 12], src, None,
                             f"p{prog:03d}_{i}", "notes")

    # ---- drum type (hydrogen kits + GM kits)
    def drum_tasks(self) -> None:
        z = self.z
        for split, kits in (("train", self.k_train), ("test", self.k_test)):
            for kit in kits:
                for cls, files in self.kits[kit].items():
                    for i in range(z.hits_per_class):
                        r = rng_for("drum", kit, cls, i)
                        f = files[int(r.integers(len(files)))]
                        x = np.concatenate([np.zeros(int(r.integers(0, 320)), np.float32), self.sample(f)])
                        self.add("real_drum", split, cls, f"kit:hydrogen:{kit}", fit(x * r.uniform(0.4, 1.0), 1.0),
                                 f"{kit.replace(' ', '_')}_{cls}_{i}")
        for split, kits in (("train", GM_KITS_TRAIN), ("test", GM_KITS_TEST)):
            for kit in kits[:z.gm_kits]:
                r = rng_for("gmkit", z.sf2, kit)
                hits = [(cls, int(k)) for cls, keys in GM_DRUMS.items() for k in r.choice(keys, z.hits_per_class)]
                ev = [(0.0, bytes([0xC9, kit]))]
                for i, (_, k) in enumerate(hits):
                    ev += note(9, 0.05 + i, 0.5, k, int(r.integers(60, 127)))
                x = render(ev, z.sf2, self.tmp, f"kit{kit}")
                for i, (cls, k) in enumerate(hits):
                    self.add("real_drum", split, cls, f"kit:{os.path.basename(z.sf2)}:{kit}", fit(x[i * SR:], 1.0),
                             f"gm{kit}_{cls}_{i}")

    # ---- pretraining set: only train voices, languages outside the speaker test, train programs and kits
    def pretrain(self) -> None:
        z, n = self.z, self.z.pretrain
        langs = [x for x in z.langs + PRETRAIN_EXTRA_LANGS if x not in SPEAKER_TEST_LANGS]
        speech: list[np.ndarray] = []
        for i in range(n["speech"]):
            r = rng_for("pre-speech", i)
            parts, srcs = [], set()
            while sum(len(p) for p in parts) < z.clip_s * SR:
                v, lang = self.v_train[int(r.integers(len(self.v_train)))], langs[int(r.integers(len(langs)))]
                parts += [speak(numbers(r, int(r.integers(3, 7))), lang, v, r, self.tmp),
                          np.zeros(int(r.integers(1600, 8000)), np.float32)]
                srcs |= {f"voice:{v}", f"lang:{lang}"}
            speech.append(fit(np.concatenate(parts), z.clip_s))
            self.put_pretrain("speech", i, speech[-1], srcs)
        music = self.pretrain_music(n["music"])
        drums = self.pretrain_drums(n["drums"])
        for i in range(n["mix"]):
            r = rng_for("pre-mix", i)
            a, b = int(r.integers(len(speech))), int(r.integers(len(music)))
            x = speech[a] / (np.std(speech[a]) + 1e-6) + 10 ** (-r.uniform(0, 12) / 20) * music[b][0] / (np.std(music[b][0]) + 1e-6)
            if drums and r.random() < 0.5:
                d = drums[int(r.integers(len(drums)))]
                x = x + 0.5 * d[0] / (np.std(d[0]) + 1e-6)
            self.put_pretrain("mix", i, 0.1 * x, self.pretrain_sources[f"speech/speech_{a:04d}.wav"]
                              + self.pretrain_sources[f"music/music_{b:04d}.wav"])
        if not self.z.hydrogen or not os.path.isdir(THEME):
            return
        files = sorted(f for f in os.listdir(THEME) if f.endswith((".oga", ".ogg", ".wav")))
        x = np.concatenate([np.concatenate([read_audio(os.path.join(THEME, f)), np.zeros(SR // 2, np.float32)])
                            for f in files])
        for i in range(int(np.ceil(len(x) / (z.clip_s * SR)))):
            self.put_pretrain("theme", i, fit(x[int(i * z.clip_s * SR):], z.clip_s), {"theme:freedesktop"})

    def put_pretrain(self, kind: str, i: int, x: np.ndarray, srcs: set[str] | list[str]) -> None:
        rel = f"{kind}/{kind}_{i:04d}.wav"
        write(os.path.join(self.out, "pretrain", rel), x)
        self.pretrain_sources[rel] = sorted(set(srcs))

    def pretrain_music(self, n: int) -> list[tuple[np.ndarray, set[str]]]:
        z, per = self.z, 10
        sfn = os.path.basename(z.sf2)

        def one(b: int) -> list[tuple[np.ndarray, set[str]]]:
            ev: list[tuple[float, bytes]] = []
            srcs: list[set[str]] = []
            for j in range(min(per, n - b * per)):
                r, t0 = rng_for("pre-music", b, j), j * z.clip_s
                progs = [program(str(r.choice(FAMILIES)), int(r.choice(TRAIN_OFFSETS))) for _ in range(2)]
                s = {f"program:{sfn}:{p}" for p in progs}
                ev += [(t0, bytes([0xC0, progs[0]])), (t0, bytes([0xC1, progs[1]]))]
                beat, root = 60.0 / r.integers(70, 160), int(r.integers(48, 60))
                scale = [0, 2, 4, 5, 7, 9, 11] if r.random() < 0.5 else [0, 2, 3, 5, 7, 8, 10]
                t = t0 + 0.05
                while t < t0 + z.clip_s - 1.0:
                    d = beat * float(r.choice([0.5, 1, 1, 2]))
                    ev += note(0, t, 0.9 * d, root + 12 + scale[int(r.integers(7))], int(r.integers(60, 110)))
                    if r.random() < 0.3:
                        ev += [e for k in (0, 2, 4) for e in note(1, t, 0.9 * d, root + scale[k] - 12 * (progs[1] // 8 == 4),
                                                                  int(r.integers(50, 90)))]
                    t += d
                if r.random() < 0.4:
                    kit = int(r.choice(GM_KITS_TRAIN))
                    s.add(f"kit:{sfn}:{kit}")
                    ev.append((t0, bytes([0xC9, kit])))
                    tb = t0 + 0.05
                    while tb < t0 + z.clip_s - 1.0:
                        ev += note(9, tb, 0.1, 36 if int((tb - t0) / beat) % 2 == 0 else 38, 90) + note(9, tb, 0.1, 42, 60)
                        tb += beat
                srcs.append(s)
            x = render(ev, z.sf2, self.tmp, f"pre{b}")
            return [(fit(x[int(j * z.clip_s * SR):], z.clip_s), s) for j, s in enumerate(srcs)]

        out: list[tuple[np.ndarray, set[str]]] = []
        with ThreadPoolExecutor(self.workers) as ex:
            for part in ex.map(one, range(int(np.ceil(n / per)))):
                out += part
        for i, (x, s) in enumerate(out):
            self.put_pretrain("music", i, x, s)
        return out

    def pretrain_drums(self, n: int) -> list[tuple[np.ndarray, set[str]]]:
        out = []
        if not self.k_train:
            return out
        for i in range(n):
            r = rng_for("pre-drums", i)
            kit = self.k_train[int(r.integers(len(self.k_train)))]
            types = self.kits[kit]
            x = np.zeros(int(self.z.clip_s * SR) + SR, np.float32)
            step = 60.0 / r.integers(80, 170) / 4
            for s in range(int(self.z.clip_s / step)):
                hit = {"kick": s % 8 == 0 or r.random() < 0.1, "snare": s % 8 == 4 or r.random() < 0.05,
                       "hihat": s % 2 == 0, "tom": r.random() < 0.04, "cymbal": s == 0 or r.random() < 0.02}
                for cls, on in hit.items():
                    if on and cls in types:
                        y = self.sample(types[cls][int(r.integers(len(types[cls])))])[:SR]
                        at = int(s * step * SR)
                        x[at:at + len(y)] += y * r.uniform(0.5, 1.0)
            out.append((fit(x, self.z.clip_s), {f"kit:hydrogen:{kit}"}))
            self.put_pretrain("drums", i, out[-1][0], out[-1][1])
        return out

    def finish(self, packages: list[str]) -> dict:
        for task, rows in self.rows.items():
            lines = ["path,label,split,source"] + [",".join(r) for r in rows]
            with open(os.path.join(self.out, "tasks", f"{task}.csv"), "w") as f:
                f.write("\n".join(lines) + "\n")
        counts = {t: {s: sum(1 for r in rows if r[2] == s) for s in ("train", "test")} for t, rows in self.rows.items()}
        meta = {"packages": package_versions(packages), "sample_rate": SR, "tasks": counts,
                "pretrain_clips": len(self.pretrain_sources), "pretrain_seconds": len(self.pretrain_sources) * self.z.clip_s,
                "pretrain_sources": self.pretrain_sources}
        with open(os.path.join(self.out, "corpus.json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
        return meta


def package_versions(names: list[str]) -> dict[str, str]:
    out = {}
    for p in names:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        out[p] = r.stdout.decode() if r.returncode == 0 else "missing"
    return out


def build(out: str, tiny: bool = False, workers: int = 2) -> dict:
    """Build the corpus at ``out`` (atomically: ``out.partial`` renamed into place); returns corpus.json."""
    if os.path.exists(os.path.join(out, "corpus.json")):
        fail(out, "a corpus is already built there (delete it to rebuild)")
    if os.path.exists(out):
        fail(out, "exists and is not a finished corpus; move it away first")
    size = SIZES["tiny" if tiny else "full"]
    for tool, pkg in (("espeak-ng", "espeak-ng"), ("fluidsynth", "fluidsynth")):
        if shutil.which(tool) is None:
            fail(tool, f"not found; install the Debian package {pkg}")
    need(size.sf2, "fluid-soundfont-gm" if size.sf2 == FLUID_SF2 else "timgm6mb-soundfont")
    part = out.rstrip("/") + ".partial"
    shutil.rmtree(part, ignore_errors=True)
    os.makedirs(part)
    with tempfile.TemporaryDirectory() as tmp:
        b = Builder(part, size, tmp, workers)
        b.speech_tasks()
        b.note_tasks()
        b.drum_tasks()
        b.pretrain()
        meta = b.finish(PACKAGES["tiny" if tiny else "full"])
    os.rename(part, out)
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                                                  "real_audio"))
    ap.add_argument("--tiny", action="store_true", help="a few clips of each kind, from espeak-ng and TimGM6mb only (tests)")
    ap.add_argument("--workers", type=int, default=2, help="fluidsynth renders side by side (1..8)")
    a = ap.parse_args(argv)
    if not 1 <= a.workers <= 8:
        fail("--workers", f"must be 1..8, got {a.workers}")
    t0 = time.perf_counter()
    meta = build(a.out, a.tiny, a.workers)
    tasks = ", ".join(f"{t} {c['train']}/{c['test']}" for t, c in sorted(meta["tasks"].items()))
    print(f"built {a.out} in {time.perf_counter() - t0:.0f} s: {meta['pretrain_clips']} pretraining clips "
          f"({meta['pretrain_seconds'] / 3600:.2f} h); tasks train/test: {tasks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
