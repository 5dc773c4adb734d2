"""Audio decoding through ffmpeg (ffmpeg-python builds the argument list; no shell is involved).

``resolve_ffmpeg()`` prefers an ``ffmpeg`` on PATH (or ``$MELSTREAM_FFMPEG``) and falls back to the
binary shipped in the ``imageio-ffmpeg`` wheel.  Everything is resampled to 16 kHz mono float32.
"""
from __future__ import annotations

import os
import shutil
from functools import lru_cache

import numpy as np

AUDIO_EXTENSIONS = frozenset(
    ".wav .flac .mp3 .ogg .oga .opus .m4a .aac .webm .mka .wma .aif .aiff .au .caf .mp4 .mkv .3gp .amr .ac3".split()
)


class DecodeError(RuntimeError):
    """ffmpeg could not turn the input into audio; ``str(err)`` is a one-line reason."""


@lru_cache(maxsize=1)
def resolve_ffmpeg() -> str:
    """Path of the ffmpeg binary: $MELSTREAM_FFMPEG, then PATH, then imageio-ffmpeg's."""
    env = os.environ.get("MELSTREAM_FFMPEG")
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise DecodeError(f"MELSTREAM_FFMPEG={env!r} is not an executable file")
        return env
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError as e:  # pragma: no cover - dependency of the package
        raise DecodeError("no ffmpeg on PATH and imageio-ffmpeg is not installed") from e
    return imageio_ffmpeg.get_ffmpeg_exe()


def _last_line(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "ffmpeg failed"


def _read_wav_direct(path: str, sample_rate: int) -> np.ndarray | None:
    """Fast path: a PCM16 mono WAV already at ``sample_rate`` is read without spawning ffmpeg.

    Bit-identical to ffmpeg's ``pcm_s16le -> f32le`` conversion (x / 32768; tested); anything
    else (other rates, channels, sample formats, broken headers) returns None and goes to ffmpeg.
    """
    import wave

    try:
        with wave.open(path, "rb") as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2 or w.getframerate() != sample_rate or w.getcomptype() != "NONE":
                return None
            n = w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError, OSError):
        return None
    if len(raw) != 2 * n or n == 0:
        return None
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / np.float32(32768.0)


def decode_audio(
    src: str,
    sample_rate: int = 16000,
    start: float | None = None,
    duration: float | None = None,
    timeout: float | None = 600.0,
    input_options: dict | None = None,
) -> np.ndarray:
    """Decode ``src`` (a path or, for trusted callers, a URL) to mono float32 at ``sample_rate``.

    ``start``/``duration`` in seconds seek before decoding.  Raises :class:`DecodeError` with a
    one-line reason when ffmpeg fails or yields no samples.
    """
    import subprocess

    import ffmpeg

    if start is None and duration is None and not input_options and "://" not in src and src.lower().endswith(".wav"):
        direct = _read_wav_direct(src, sample_rate)
        if direct is not None:
            return direct
    in_kw = dict(input_options or {})
    if start is not None and start > 0:
        in_kw["ss"] = f"{float(start):.3f}"
    if duration is not None:
        in_kw["t"] = f"{float(duration):.3f}"
    # "file:" protocol stops ffmpeg from interpreting a local name like "a:b" or "-x" as an option/protocol.
    target = src if "://" in src else "file:" + os.path.abspath(src)
    stream = ffmpeg.input(target, **in_kw).output(
        "pipe:", format="f32le", acodec="pcm_f32le", ac=1, ar=sample_rate, map="0:a:0"
    )
    args = [resolve_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", *stream.get_args()]
    try:
        proc = subprocess.run(args, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DecodeError(f"ffmpeg timed out after {timeout} s") from None
    if proc.returncode != 0:
        raise DecodeError(_last_line(proc.stderr))
    wav = np.frombuffer(proc.stdout, dtype="<f4")
    if wav.size == 0:
        raise DecodeError("no audio samples decoded")
    if not np.isfinite(wav).all():
        raise DecodeError("decoded audio contains NaN or Inf")
    return wav.copy()


def encode_wav(path: str, wav: np.ndarray, sample_rate: int = 16000) -> None:
    """Write mono float audio as 16-bit PCM WAV with the stdlib (used by the demo corpus and tests)."""
    import wave

    pcm = (np.clip(wav, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


def transcode(src: str, dst: str, extra: list[str] | None = None, timeout: float = 120.0) -> None:
    """Re-encode ``src`` into ``dst`` (format from its extension) with ffmpeg: tests and benchmarks."""
    import subprocess

    args = [resolve_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", src, *(extra or []), dst]
    proc = subprocess.run(args, capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise DecodeError(_last_line(proc.stderr))
