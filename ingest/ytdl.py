"""yt-dlp wrapper for AudioSet-style segments: one request per clip, failures classified.

:class:`ClipFetcher` downloads ``[start, end]`` of one video with the yt-dlp Python API
(``download_ranges`` -> yt-dlp's ffmpeg downloader seeks on the stream URL and copies only that
range; ``force_keyframes_at_cuts`` off, ``format: bestaudio/best``), then decodes the file to
16 kHz mono.  Only when that range fetch fails at the ffmpeg stage (or yields a clip of the wrong
length) does it fall back to downloading the whole file and cutting it locally.  yt-dlp's own
retries are off: retrying with backoff is the caller's job (see ``ingest/sources/audioset.py``).

Every error becomes a :class:`ClipFailure` with a short ``reason`` and a ``transient`` flag
(:func:`classify`).  Permanent: ``unavailable``, ``private``, ``removed``, ``members_only``,
``age_restricted``, ``sign_in_required``, ``geo_blocked``, ``no_audio``, ``undecodable``,
``bad_duration``, ``silent``, ``empty``.  Transient: ``http_429``, ``http_5xx``, ``http_403``
(on YouTube a 403 on the media URL means throttling or an outdated player, not a gone video),
``bot_check`` ("Sign in to confirm you're not a bot"), ``timeout``, ``connection``,
``range_failed`` (the ffmpeg range fetch failed and the whole-file fallback is off) and
``unknown`` (anything not recognised is retried rather than written off).

Temp files go to a per-process directory (``tmp_dir``) that is emptied after every clip.  No
shell is ever involved: URLs are built from validated IDs and handed to yt-dlp / ffmpeg as
argument-list items.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .decode import DecodeError, decode_audio, resolve_ffmpeg

log = logging.getLogger("melstream.ingest.ytdl")

YTID_RE = re.compile(r"^[A-Za-z0-9_-]{11}$")
DEFAULT_URL_TEMPLATE = "https://www.youtube.com/watch?v={ytid}"

PERMANENT_REASONS = ("unavailable", "private", "removed", "members_only", "age_restricted", "sign_in_required",
                     "geo_blocked", "no_audio", "undecodable", "bad_duration", "silent", "empty")
TRANSIENT_REASONS = ("http_429", "http_5xx", "http_403", "bot_check", "timeout", "connection", "range_failed",
                     "unknown")


class ClipFailure(Exception):
    """One clip could not be fetched: ``reason`` (see module doc), ``transient``, one-line ``message``."""

    def __init__(self, reason: str, message: str, transient: bool):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.transient = transient


# Ordered: the first pattern that matches the error text wins.  Bot checks before "sign in";
# "removed"/"terminated" before "account"; HTTP statuses of the extractor and of ffmpeg alike.
_RULES: list[tuple[str, bool, re.Pattern]] = [(r, t, re.compile(p, re.I)) for r, t, p in [
    ("bot_check", True, r"not a bot|confirm you.?re not a robot|unusual traffic"),
    ("http_429", True, r"\b429\b|too many requests|rate.?limit"),
    ("private", False, r"private video|video is private|has been made private"),
    ("members_only", False, r"members[- ]only|join this channel|channel.?s members|available to this channel"),
    ("age_restricted", False, r"confirm your age|age[- ]restrict|inappropriate for some users|age-gated"),
    ("geo_blocked", False, r"in your country|geo[- ]?restrict|geo[- ]?block|not available in your (?:region|location)"),
    ("removed", False, r"removed|terminated|no longer available|copyright|violat(?:es|ing)|deleted"),
    ("sign_in_required", False, r"sign in|log ?in required|login_required|requires authentication|use --cookies"),
    ("http_5xx", True, r"HTTP Error 5\d\d|Server returned 5\d\d|\b50[0-4]\b.*(?:error|unavailable|gateway)|5XX Server Error"),
    ("no_audio", False, r"requested format is not available|no video formats|no audio|does not contain any stream"
                        r"|matches no streams|unsupported url|Output file #0 does not contain"),
    ("unavailable", False, r"video unavailable|video is unavailable|is not available|HTTP Error 40[4]|HTTP Error 410"
                           r"|Server returned 404|\b404 Not Found|does not exist|incomplete youtube id|not a valid URL"),
    ("http_403", True, r"HTTP Error 403|Server returned 403|\b403 Forbidden"),
    ("timeout", True, r"timed? ?out|timeout"),
    ("connection", True, r"connection|reset by peer|refused|unreachable|name resolution|remote end closed"
                         r"|bytes read|incomplete ?read|did not get any data|content too short|EOF occurred"
                         r"|unable to download|SSL|broken pipe|end of file"),
]]


def classify(text: str, status: int | None = None) -> tuple[str, bool]:
    """Error text (and an HTTP status when known) -> ``(reason, transient)``."""
    if status is not None:
        if status == 429:
            return "http_429", True
        if 500 <= status < 600:
            return "http_5xx", True
        if status in (404, 410):
            return "unavailable", False
        if status == 403:
            return "http_403", True
    for reason, transient, pat in _RULES:
        if pat.search(text or ""):
            return reason, transient
    return "unknown", True


def _http_status(exc: BaseException | None) -> int | None:
    """The HTTP status in a yt-dlp exception chain, if any."""
    seen = 0
    while exc is not None and seen < 10:
        st = getattr(exc, "status", None)
        if isinstance(st, int) and 100 <= st < 600:
            return st
        code = getattr(exc, "code", None)
        if isinstance(code, int) and 100 <= code < 600:
            return code
        nxt = getattr(exc, "cause", None) or exc.__cause__
        if nxt is None:
            info = getattr(exc, "exc_info", None)
            nxt = info[1] if info and len(info) > 1 and info[1] is not exc else None
        exc = nxt
        seen += 1
    return None


def _one_line(text: str, limit: int = 300) -> str:
    lines = [re.sub(r"^(?:ERROR:\s*)+", "", ln.strip()) for ln in str(text).splitlines()]
    lines = list(dict.fromkeys(ln for ln in lines if ln))
    return (" | ".join(lines[-3:]) if lines else "no message")[:limit]


class _Capture:
    """yt-dlp logger: nothing to the console, warnings and errors kept for classification."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def debug(self, msg: str) -> None:
        if msg.startswith("[debug]"):
            return
        # ffmpeg's stderr and download progress arrive here too; keep the ones that look like errors
        if re.search(r"error|forbidden|not found|refused|timed out|429|40[34]|5\d\d", msg, re.I):
            self.lines.append(msg)

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        self.lines.append(msg)

    def error(self, msg: str) -> None:
        self.lines.append(msg)


@dataclass
class FetchConfig:
    url_template: str = DEFAULT_URL_TEMPLATE
    cookies: str | None = None
    proxy: str | None = None
    socket_timeout: float = 30.0
    tmp_dir: str | None = None
    cache_dir: str | None = None
    duration_tolerance: float = 0.5
    fallback: bool = True
    extra_params: dict[str, Any] = field(default_factory=dict)

    def url(self, ytid: str) -> str:
        if not YTID_RE.match(ytid):
            raise ValueError(f"invalid YouTube ID {ytid!r}")
        return self.url_template.format(ytid=ytid)


def check_template(template: str) -> str:
    """``--url-template`` must be an http(s) URL with exactly the ``{ytid}`` field."""
    if not re.match(r"^https?://", template or ""):
        raise ValueError(f"--url-template {template!r}: must start with http:// or https://")
    try:
        probe = template.format(ytid="AAAAAAAAAAA")
    except (KeyError, IndexError, ValueError) as e:
        raise ValueError(f"--url-template {template!r}: only the {{ytid}} field is allowed ({e})") from None
    if "AAAAAAAAAAA" not in probe:
        raise ValueError(f"--url-template {template!r}: must contain {{ytid}}")
    return template


def _is_youtube(template: str) -> bool:
    return bool(re.match(r"^https?://(?:[a-z0-9-]+\.)?(?:youtube\.com|youtu\.be|youtube-nocookie\.com)/", template, re.I))


class ClipFetcher:
    """Fetch ``[start, end]`` of one video as float32 mono; one instance per worker process."""

    def __init__(self, cfg: FetchConfig):
        self.cfg = cfg
        self._tmp: str | None = None
        self._ydl: dict[bool, Any] = {}
        self._capture = _Capture()

    # -- yt-dlp plumbing ---------------------------------------------------------------------
    @property
    def tmp(self) -> str:
        if self._tmp is None:
            base = self.cfg.tmp_dir
            if base:
                os.makedirs(base, exist_ok=True)
            self._tmp = tempfile.mkdtemp(prefix=f"melstream-yt-{os.getpid()}-", dir=base)
        elif not os.path.isdir(self._tmp):  # removed while idle (finalize drops empty dirs): same path again
            os.makedirs(self._tmp, exist_ok=True)
        return self._tmp

    def _clean(self) -> None:
        if self._tmp and os.path.isdir(self._tmp):
            for name in os.listdir(self._tmp):
                p = os.path.join(self._tmp, name)
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    try:
                        os.unlink(p)
                    except OSError:
                        pass

    def close(self) -> None:
        for y in self._ydl.values():
            try:
                y.close()
            except Exception:  # pragma: no cover - best effort
                pass
        self._ydl.clear()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    def _ydl_for(self, ranged: bool):
        y = self._ydl.get(ranged)
        if y is not None:
            return y
        import yt_dlp

        ffmpeg = resolve_ffmpeg()
        try:  # yt-dlp's ffmpeg downloader checks availability without its params (FIXME in yt-dlp)
            from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor
            FFmpegPostProcessor._ffmpeg_location.set(ffmpeg)
        except (ImportError, AttributeError):  # pragma: no cover - older/newer yt-dlp
            pass
        params: dict[str, Any] = {
            "format": "bestaudio/best",
            "ffmpeg_location": ffmpeg,
            "noplaylist": True,
            "quiet": True,
            "no_warnings": False,
            "noprogress": True,
            "logger": self._capture,
            "retries": 0,
            "fragment_retries": 0,
            "extractor_retries": 0,
            "file_access_retries": 0,
            "socket_timeout": self.cfg.socket_timeout,
            "outtmpl": {"default": os.path.join(self.tmp, "clip.%(ext)s")},
            "overwrites": True,
            "continuedl": False,
            "nopart": False,
            "fixup": "never",
            "writethumbnail": False,
            "check_formats": False,
            "allowed_extractors": ["youtube"] if _is_youtube(self.cfg.url_template) else ["default"],
            "cachedir": self.cfg.cache_dir or False,
            # ffmpeg reads the stream URL itself: give it the same I/O timeout (microseconds)
            "external_downloader_args": {"ffmpeg_i": ["-rw_timeout", str(int(self.cfg.socket_timeout * 1e6))]},
        }
        if self.cfg.cookies:
            params["cookiefile"] = self.cfg.cookies
        if self.cfg.proxy:
            params["proxy"] = self.cfg.proxy
        if ranged:
            params["force_keyframes_at_cuts"] = False
        params.update(self.cfg.extra_params)
        y = yt_dlp.YoutubeDL(params)
        self._ydl[ranged] = y
        return y

    def _download(self, url: str, ranged: bool, start: float = 0.0, end: float = 0.0) -> str:
        """Run one yt-dlp download; return the path of the file it wrote (raises ClipFailure)."""
        from yt_dlp.utils import DownloadError, download_range_func

        self._clean()
        self._capture.lines = []
        y = self._ydl_for(ranged)
        if ranged:  # YoutubeDL reads this param when it processes the video: one range per clip
            y.params["download_ranges"] = download_range_func(None, [(float(start), float(end))])
        try:
            y.extract_info(url, download=True)
        except DownloadError as e:
            text = "\n".join([str(e), *self._capture.lines])
            reason, transient = classify(str(e), _http_status(e))
            if reason == "unknown" and self._capture.lines:
                reason, transient = classify("\n".join(self._capture.lines))
            if ranged and reason == "unknown" and re.search(r"ffmpeg|conversion failed|invalid data", text, re.I):
                raise ClipFailure("range_failed", _one_line(text), True) from None
            raise ClipFailure(reason, _one_line(str(e)), transient) from None
        files = [os.path.join(self.tmp, f) for f in os.listdir(self.tmp)
                 if not f.endswith((".part", ".ytdl", ".tmp")) and os.path.isfile(os.path.join(self.tmp, f))]
        files = [f for f in files if os.path.getsize(f) > 0]
        if not files:
            text = "\n".join(self._capture.lines)
            reason, transient = classify(text) if text else ("empty", False)
            if ranged and reason in ("unknown", "empty"):
                raise ClipFailure("range_failed", _one_line(text or "no output file"), True)
            raise ClipFailure(reason, _one_line(text or "yt-dlp wrote no file"), transient)
        return max(files, key=os.path.getsize)

    # -- public ------------------------------------------------------------------------------
    def fetch(self, ytid: str, start: float, end: float, sample_rate: int = 16000) -> tuple[np.ndarray, str]:
        """``[start, end]`` of video ``ytid`` as float32 mono at ``sample_rate``; returns ``(wav, mode)``.

        ``mode`` is ``"range"`` (range fetch) or ``"full"`` (whole file, cut locally).  Raises
        :class:`ClipFailure`.  Temp files are removed before returning.
        """
        url = self.cfg.url(ytid)
        want = float(end) - float(start)
        try:
            try:
                path = self._download(url, ranged=True, start=start, end=end)
                wav = self._decode(path, None, None, sample_rate)
                self.check(wav, want, sample_rate)
                return wav, "range"
            except ClipFailure as e:
                if not self.cfg.fallback or e.reason not in ("range_failed", "undecodable", "bad_duration", "empty"):
                    raise
                log.debug("%s: range fetch failed (%s); falling back to the whole file", ytid, e)
            path = self._download(url, ranged=False)
            wav = self._decode(path, start, want, sample_rate)
            self.check(wav, want, sample_rate)
            return wav, "full"
        finally:
            self._clean()

    @staticmethod
    def _decode(path: str, start: float | None, duration: float | None, sample_rate: int) -> np.ndarray:
        try:
            return decode_audio(path, sample_rate, start=start, duration=duration)
        except DecodeError as e:
            msg = str(e)
            if re.search(r"matches no streams|does not contain any stream|no audio", msg, re.I):
                raise ClipFailure("no_audio", msg, False) from None
            raise ClipFailure("undecodable", msg, False) from None

    def check(self, wav: np.ndarray, want: float, sample_rate: int) -> None:
        """Every clip is checked before it may enter a shard: not empty, not all-zero, right length."""
        if wav.size == 0:
            raise ClipFailure("empty", "no samples decoded", False)
        got = wav.size / sample_rate
        if abs(got - want) > self.cfg.duration_tolerance:
            raise ClipFailure("bad_duration", f"decoded {got:.2f} s, expected {want:.2f} s", False)
        if not np.any(wav):
            raise ClipFailure("silent", "all samples are zero", False)
