"""Audio decoding through ffmpeg (ffmpeg-python builds the argument list; no shell is involved).

``resolve_ffmpeg()`` prefers an ``ffmpeg`` on PATH (or ``$MELSTREAM_FFMPEG``) and falls back to the
binary shipped in the ``imageio-ffmpeg`` wheel.  Everything is resampled to 16 kHz mono float32.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from functools import lru_cache

import numpy as np

AUDIO_EXTENSIONS = frozenset(
    ".wav .flac .mp3 .ogg .oga .opus .m4a .aac .webm .mka .wma .aif .aiff .au .caf .mp4 .mkv .3gp .amr .ac3".split()
)


class DecodeError(RuntimeError):
    """ffmpeg could not turn the input into audio; ``str(err)`` is a one-line reason."""

    reason_class = "undecodable"


class NoAudioStream(DecodeError):
    """The input has no audio stream (a video without sound, an image): skipped as ``no_audio_stream``."""

    reason_class = "no_audio_stream"


def ffmpeg_error(stderr: bytes) -> DecodeError:
    """The DecodeError for a failed ffmpeg call: its last error line, or :class:`NoAudioStream` when the
    ``-map 0:a:0`` matched nothing (ffmpeg says "matches no streams ... add a trailing '?' to the map")."""
    text = stderr.decode("utf-8", "replace")
    if "matches no streams" in text:
        return NoAudioStream("no audio stream (the file has no audio track)")
    return DecodeError(_last_line(stderr))


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

    if start is None and duration is None and not input_options:
        direct = _wav_fast_path(src, sample_rate)
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
        raise ffmpeg_error(proc.stderr)
    return _checked(np.frombuffer(proc.stdout, dtype="<f4")).copy()


def _checked(wav: np.ndarray) -> np.ndarray:
    """The checks every decoded clip passes: some samples, all finite."""
    if wav.size == 0:
        raise DecodeError("no audio samples decoded")
    if not np.isfinite(wav).all():
        raise DecodeError("decoded audio contains NaN or Inf")
    return wav


def _wav_fast_path(src: str, sample_rate: int) -> np.ndarray | None:
    """``decode_audio``'s direct read for a local ``.wav`` path (None: it needs ffmpeg)."""
    if "://" in src or not src.lower().endswith(".wav"):
        return None
    return _read_wav_direct(src, sample_rate)


# decode_many: files per ffmpeg process at most, and the free space /dev/shm needs to be used.
MAX_GROUP = 64
_SHM_MIN_FREE = 128 << 20


def _scratch_parent() -> str | None:
    """/dev/shm when it exists, is writable and has room; else None (the system temp dir)."""
    shm = "/dev/shm"
    try:
        if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
            st = os.statvfs(shm)
            if st.f_bavail * st.f_frsize >= _SHM_MIN_FREE:
                return shm
    except OSError:
        pass
    return None


def _group_args(paths: list[str], outs: list[str], sample_rate: int) -> list[str]:
    """One ffmpeg call: input ``i`` -> output ``i`` (first audio stream, f32le mono at ``sample_rate``).

    Per output the options are those of :func:`decode_audio`.  ``-max_error_rate 0`` makes any
    decoding error fail the call (the whole group is then decoded file by file).  Each decoder
    runs single-threaded (``-threads 1`` per input: the files already run in parallel, and it
    halves ffmpeg's CPU time here; decoders are bit-exact whatever their thread count).
    """
    args = [resolve_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-max_error_rate", "0", "-y"]
    for p in paths:
        args += ["-threads", "1", "-i", "file:" + os.path.abspath(p)]
    for i, out in enumerate(outs):
        args += ["-map", f"{i}:a:0", "-f", "f32le", "-ac", "1", "-acodec", "pcm_f32le", "-ar", str(sample_rate),
                 "file:" + out]
    return args


def _decode_group(paths: list[str], sample_rate: int, timeout: float | None) -> list[np.ndarray | DecodeError | None] | None:
    """Decode ``paths`` with one ffmpeg process; None when the call failed as a whole.

    Trusted only when ffmpeg exits 0 and logs nothing at level ``error``; an entry is None when
    its output file is missing (that file is then decoded alone).
    """
    import subprocess

    with tempfile.TemporaryDirectory(prefix="melstream-dec-", dir=_scratch_parent()) as tmp:
        outs = [os.path.join(tmp, f"{i}.f32") for i in range(len(paths))]
        try:
            proc = subprocess.run(_group_args(paths, outs, sample_rate), capture_output=True, timeout=timeout,
                                  check=False)
        except (subprocess.TimeoutExpired, OSError, DecodeError):
            return None
        if proc.returncode != 0 or proc.stderr.strip():
            return None
        return [_read_output(o) for o in outs]


def _read_output(path: str) -> np.ndarray | DecodeError | None:
    """One output of a group call, checked like :func:`decode_audio` (None: no such file)."""
    try:
        wav = np.fromfile(path, dtype="<f4")
    except FileNotFoundError:
        return None
    try:
        return _checked(wav)
    except DecodeError as e:
        return e


def _decode_one(path: str, sample_rate: int, timeout: float | None) -> np.ndarray | DecodeError:
    """:func:`decode_audio` with its DecodeError returned instead of raised."""
    try:
        return decode_audio(path, sample_rate, timeout=timeout)
    except DecodeError as e:
        return e


def decode_many(paths: list[str], sample_rate: int = 16000,
                timeout: float | None = 600.0) -> list[np.ndarray | DecodeError]:
    """Decode local files like :func:`decode_audio`, sharing one ffmpeg process per group.

    Returns, in order, each file's audio (bit-identical to ``decode_audio``) or its DecodeError.
    PCM16 mono WAVs at ``sample_rate`` are read directly; empty or missing files and URLs go to
    ``decode_audio`` alone; the rest are decoded by one ffmpeg call per ``MAX_GROUP`` files into a
    private temporary directory (``/dev/shm`` when usable).  When such a call fails (one corrupt
    file fails it all) or times out (``timeout`` applies per call), each of its files is decoded
    alone, so good files are never lost and bad ones get their own reason.  Other exceptions
    (OSError ...) propagate as from ``decode_audio``.
    """
    results: list[np.ndarray | DecodeError | None] = [None] * len(paths)
    group: list[int] = []
    for i, p in enumerate(paths):
        direct = _wav_fast_path(p, sample_rate)
        if direct is not None:
            results[i] = direct
        elif "://" in p or not _nonempty_file(p):
            results[i] = _decode_one(p, sample_rate, timeout)
        else:
            group.append(i)
    for g in range(0, len(group), MAX_GROUP):
        idx = group[g:g + MAX_GROUP]
        got = _decode_group([paths[i] for i in idx], sample_rate, timeout) if len(idx) > 1 else None
        for k, i in enumerate(idx):
            res = got[k] if got is not None else None
            results[i] = res if res is not None else _decode_one(paths[i], sample_rate, timeout)
    return results  # type: ignore[return-value]


def _nonempty_file(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


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
