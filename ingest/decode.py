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


# -- decoding from memory (wds / parquet members): ffmpeg reads pipes, never a temporary file --------------
MAX_PIPE_GROUP = 16  # inputs per ffmpeg process of decode_bytes_many (two pipes each)


def read_wav_bytes(data: bytes, sample_rate: int) -> np.ndarray | None:
    """:func:`_read_wav_direct` for a WAV held in memory (None: it needs ffmpeg)."""
    import io

    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    return _read_wav_direct(io.BytesIO(data), sample_rate)  # type: ignore[arg-type]


def _out_args(sample_rate: int) -> list[str]:
    """The output options of :func:`decode_audio` / :func:`_group_args` (f32le mono at ``sample_rate``)."""
    return ["-f", "f32le", "-ac", "1", "-acodec", "pcm_f32le", "-ar", str(sample_rate)]


def decode_bytes(data: bytes, sample_rate: int = 16000, timeout: float | None = 600.0) -> np.ndarray:
    """Decode one in-memory file exactly as :func:`decode_audio` decodes it from disk: ffmpeg reads it as an
    in-memory file (Linux, see :func:`_memfd_group`) or from its stdin pipe (elsewhere: formats that need
    seeking, an M4A whose index sits at the end, fail there, and an MP3 keeps its end padding)."""
    import subprocess

    if not data:
        raise DecodeError("empty member")
    direct = read_wav_bytes(data, sample_rate)
    if direct is not None:
        return direct
    if _MEMFD:
        got = _memfd_group([data], sample_rate, timeout)
        if got is None:
            raise DecodeError("ffmpeg could not be run on an in-memory file")
        if isinstance(got[0], DecodeError):
            raise got[0]
        return got[0]
    args = [resolve_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", "pipe:0",
            "-map", "0:a:0", *_out_args(sample_rate), "pipe:1"]
    try:
        proc = subprocess.run(args, input=bytes(data), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DecodeError(f"ffmpeg timed out after {timeout} s") from None
    if proc.returncode != 0:
        raise DecodeError(_last_line(proc.stderr))
    return _checked(np.frombuffer(proc.stdout, dtype="<f4")).copy()


def _pipe_group(blobs: list[bytes], sample_rate: int, timeout: float | None) -> list[np.ndarray | DecodeError] | None:
    """Decode ``blobs`` with one ffmpeg process, input ``i`` on pipe ``pipe:<fd>`` -> output ``i`` on another
    pipe; this process feeds and drains every pipe with one selector loop.  None when the call failed as a
    whole (any error message, a nonzero exit, a timeout): the caller then decodes each blob alone."""
    import selectors
    import subprocess
    import time

    child: list[int] = []
    ins: dict[int, tuple[int, memoryview]] = {}  # parent write fd -> (index, remaining bytes)
    outs: dict[int, int] = {}  # parent read fd -> index
    bufs: list[list[bytes]] = [[] for _ in blobs]
    args = [resolve_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-max_error_rate", "0", "-y"]
    out_args: list[str] = []
    proc = None
    sel = selectors.DefaultSelector()
    try:
        for i, b in enumerate(blobs):
            r, w = os.pipe()
            child.append(r)
            ins[w] = (i, memoryview(bytes(b)))
            args += ["-threads", "1", "-i", f"pipe:{r}"]
        for i in range(len(blobs)):
            r, w = os.pipe()
            child.append(w)
            outs[r] = i
            out_args += ["-map", f"{i}:a:0", *_out_args(sample_rate), f"pipe:{w}"]
        proc = subprocess.Popen(args + out_args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, pass_fds=child)
        for fd in child:
            os.close(fd)
        child = []
        for fd in ins:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_WRITE)
        for fd in outs:
            sel.register(fd, selectors.EVENT_READ)
        assert proc.stderr is not None
        err_fd = proc.stderr.fileno()
        sel.register(err_fd, selectors.EVENT_READ)
        err: list[bytes] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        while sel.get_map():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            for key, _ in sel.select(left):
                fd = key.fd
                if fd in ins:
                    i, rest = ins[fd]
                    try:
                        n = os.write(fd, rest[:1 << 16])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:  # ffmpeg stopped reading this input: its error tells why
                        n = len(rest)
                    rest = rest[n:]
                    ins[fd] = (i, rest)
                    if not rest:
                        sel.unregister(fd)
                        os.close(fd)
                        del ins[fd]
                else:
                    chunk = os.read(fd, 1 << 20)
                    if chunk:
                        (err if fd == err_fd else bufs[outs[fd]]).append(chunk)
                    else:
                        sel.unregister(fd)
        proc.wait(timeout=None if deadline is None else max(0.1, deadline - time.monotonic()))
        if proc.returncode != 0 or b"".join(err).strip():
            return None
        res: list[np.ndarray | DecodeError] = []
        for parts in bufs:
            try:
                res.append(_checked(np.frombuffer(b"".join(parts), dtype="<f4")).copy())
            except DecodeError as e:
                res.append(e)
        return res
    except (OSError, subprocess.TimeoutExpired):
        return None
    finally:
        sel.close()
        for fd in child + list(ins) + list(outs):
            try:
                os.close(fd)
            except OSError:
                pass
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()


def _memfd(data: bytes, name: str) -> int:
    """An anonymous in-memory file (``memfd_create``: no path on any file system) holding ``data``."""
    fd = os.memfd_create(name, 0)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    return fd


def _memfd_group(blobs: list[bytes], sample_rate: int, timeout: float | None) -> list[np.ndarray | DecodeError] | None:
    """Decode ``blobs`` with one ffmpeg process that reads each from an in-memory file (``memfd``) as
    ``file:/dev/fd/N``: seekable like a file on disk, so every format decodes exactly as from disk (an MP3's
    end padding is trimmed, an M4A with its index at the end opens), and no byte touches a disk.  Outputs go
    to in-memory files too.  None when the call failed as a whole (the caller decodes each blob alone)."""
    import subprocess

    fds: list[int] = []
    try:
        ins = [_memfd(bytes(b), f"melstream-in{i}") for i, b in enumerate(blobs)]
        fds += ins
        outs = [os.memfd_create(f"melstream-out{i}", 0) for i in range(len(blobs))]
        fds += outs
        args = [resolve_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-max_error_rate", "0", "-y"]
        for fd in ins:
            args += ["-threads", "1", "-i", f"file:/dev/fd/{fd}"]
        for i, fd in enumerate(outs):
            args += ["-map", f"{i}:a:0", *_out_args(sample_rate), f"file:/dev/fd/{fd}"]
        try:
            proc = subprocess.run(args, capture_output=True, timeout=timeout, check=False, pass_fds=fds)
        except subprocess.TimeoutExpired:
            return None
        if proc.returncode != 0 or proc.stderr.strip():
            if len(blobs) == 1:
                return [DecodeError(_last_line(proc.stderr))]
            return None
        res: list[np.ndarray | DecodeError] = []
        for fd in outs:
            size = os.fstat(fd).st_size
            raw = os.pread(fd, size, 0) if size else b""
            try:
                res.append(_checked(np.frombuffer(raw, dtype="<f4")).copy())
            except DecodeError as e:
                res.append(e)
        return res
    except OSError:
        return None
    finally:
        for fd in fds:
            os.close(fd)


_MEMFD = hasattr(os, "memfd_create") and os.path.isdir("/dev/fd")


def decode_bytes_many(blobs: list[bytes], sample_rate: int = 16000,
                      timeout: float | None = 600.0) -> list[np.ndarray | DecodeError]:
    """:func:`decode_bytes` for many in-memory files, ``MAX_PIPE_GROUP`` per ffmpeg process.

    Returns, in order, each file's audio (bit-identical to decoding it from disk with ``decode_audio`` or
    ``decode_many``) or its DecodeError.  On Linux ffmpeg reads in-memory files (:func:`_memfd_group`),
    elsewhere pipes (:func:`_pipe_group`: an MP3's end padding is then kept, an M4A must have its index
    first).  A group call that fails (one bad file fails it all) is redone file by file, so good files are
    never lost and bad ones get their own reason."""
    group_fn = _memfd_group if _MEMFD else _pipe_group
    results: list[np.ndarray | DecodeError | None] = [None] * len(blobs)
    todo: list[int] = []
    for i, b in enumerate(blobs):
        direct = read_wav_bytes(b, sample_rate) if b else None
        if direct is not None:
            results[i] = direct
        elif not b:
            results[i] = DecodeError("empty member")
        else:
            todo.append(i)
    for g in range(0, len(todo), MAX_PIPE_GROUP):
        idx = todo[g:g + MAX_PIPE_GROUP]
        got = group_fn([blobs[i] for i in idx], sample_rate, timeout) if len(idx) > 1 else None
        for k, i in enumerate(idx):
            res = got[k] if got is not None else None
            if res is None:
                try:
                    res = decode_bytes(blobs[i], sample_rate, timeout)
                except DecodeError as e:
                    res = e
            results[i] = res
    return results  # type: ignore[return-value]
