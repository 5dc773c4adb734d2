"""Secrets never written or printed: one redaction function for URLs, free text, configs and logs.

A URL's userinfo (``https://user:pw@host/``) becomes ``https://***@host/``; the values of query
parameters that carry credentials (signed-URL signatures and tokens: ``X-Amz-Signature``,
``X-Amz-Credential``, ``X-Amz-Security-Token``, ``X-Goog-Signature``, ``sig``, ``token``, ...) become
``REDACTED``.  Every writer of configs, manifests, logs, errors, summaries and reports passes its
text through :func:`redact` (or :func:`redact_obj` for a mapping); :func:`install_log_redaction` puts a
filter on the root logger's handlers so that library warnings (webdataset, urllib3) are covered too.

Credentials should reach melstream through the environment or ``~/.netrc`` (docs/sharing.md), not
through URLs on the command line: those end up in shell history and ``ps`` output that we cannot clean.
"""
from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

__all__ = ["SECRET_QUERY_KEYS", "redact", "redact_url", "redact_obj", "install_log_redaction", "RedactFilter"]

MASK = "***"
# query parameter names (lower-case) whose values are secrets; "x-amz-*"/"x-goog-*" signature parts
# and anything that ends in token/secret/signature/password/key are matched by the patterns below
SECRET_QUERY_KEYS = frozenset({
    "sig", "signature", "token", "access_token", "id_token", "refresh_token", "auth", "authorization",
    "password", "passwd", "pwd", "secret", "client_secret", "api_key", "apikey", "key", "sas", "se_token",
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-signature", "x-goog-credential",
    "awsaccesskeyid", "googleaccessid", "policy", "hmac",
})
_SECRET_SUFFIX = re.compile(r"(token|secret|signature|password|credential|apikey|api_key|sig)$", re.I)
# a URL inside free text: scheme://... up to whitespace or a quote/bracket
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]{1,15}://[^\s'\"<>()\[\]{}]+")
# key=value pairs of secret-looking keys in free text (e.g. a query string printed without its URL)
_KV_IN_TEXT = re.compile(r"(?i)\b((?:x-amz-|x-goog-)?(?:signature|credential|security-token|sig|token|access_token|"
                         r"password|secret|api_?key))=([^&\s'\"]+)")


def _secret_key(name: str) -> bool:
    n = name.lower()
    return n in SECRET_QUERY_KEYS or bool(_SECRET_SUFFIX.search(n))


def redact_url(url: str) -> str:
    """``url`` with its userinfo and secret query values masked; other strings are returned unchanged."""
    if not isinstance(url, str) or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return _KV_IN_TEXT.sub(lambda m: f"{m.group(1)}=REDACTED", re.sub(r"//[^/@\s]*@", f"//{MASK}@", url))
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret_key(k) for k, _ in pairs):
            query = "&".join(f"{k}=REDACTED" if _secret_key(k) else (f"{k}={v}" if v or "=" in query else k)
                             for k, v in pairs)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: Any) -> Any:
    """Every URL in ``text`` passed through :func:`redact_url`, and secret ``key=value`` pairs masked;
    non-strings are returned unchanged."""
    if not isinstance(text, str) or not text:
        return text
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    if "=" in text:
        text = _KV_IN_TEXT.sub(lambda m: f"{m.group(1)}=REDACTED", text)
    return text


def redact_obj(obj: Any) -> Any:
    """A copy of a JSON/YAML-like structure (dicts, lists, tuples, strings) with every string redacted."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact(k): redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact_obj(v) for v in obj)
    return obj


class RedactFilter(logging.Filter):
    """A logging filter that redacts the formatted message (and drops the args it consumed)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: leave it to the handler to report
            return True
        clean = redact(msg)
        if clean != msg or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if redact(str(exc)) != str(exc):  # the traceback text would print the secret: keep only the line
                record.msg = f"{clean}: {type(exc).__name__}: {redact(str(exc))}"
                record.exc_info, record.exc_text = None, None
        return True


_FILTER = RedactFilter()


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Attach the redaction filter to ``logger`` (default: root) and to each of its handlers
    (idempotent); handlers added later by ``logging.basicConfig`` need another call."""
    lg = logger or logging.getLogger()
    if _FILTER not in lg.filters:
        lg.addFilter(_FILTER)
    for h in lg.handlers:
        if _FILTER not in h.filters:
            h.addFilter(_FILTER)
