"""``shards.lock`` (one writer per directory, stale locks taken over) and ``shards.redact`` (secrets
never written or printed): the two primitives every writer of shared state uses (issue 22)."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest

from shards.lock import LOCK_NAME, DirLock, LockHeld, read_holder
from shards.redact import install_log_redaction, redact, redact_obj, redact_url
from tests.conftest import ROOT

HOLD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from shards.lock import DirLock
    lk = DirLock({d!r}, "run directory").acquire()
    print("held", flush=True)
    time.sleep(60)
""")


def test_second_process_is_refused_with_the_holder_named(tmp_path):
    d = str(tmp_path / "run")
    p = subprocess.Popen([sys.executable, "-c", HOLD.format(root=ROOT, d=d)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(LockHeld) as e:
            DirLock(d, "run directory").acquire()
        msg = str(e.value)
        assert f"pid {p.pid}" in msg and "host" in msg and "\n" not in msg
    finally:
        p.kill()
        p.wait()
    # the holder died without releasing: its record is still there, and the next writer takes over
    assert read_holder(os.path.join(d, LOCK_NAME))["pid"] == p.pid
    with DirLock(d, "run directory") as lk:
        assert lk.held and read_holder(lk.path)["pid"] == os.getpid()
    assert not os.path.exists(os.path.join(d, LOCK_NAME))  # released: removed


def test_lock_is_exclusive_within_one_process_too(tmp_path):
    a = DirLock(str(tmp_path)).acquire()
    with pytest.raises(LockHeld):
        DirLock(str(tmp_path)).acquire()
    a.release()
    DirLock(str(tmp_path)).acquire().release()


@pytest.mark.parametrize("url,secret", [
    ("http://user:secretpw@127.0.0.1:8000/s/{000..009}.tar", "secretpw"),
    ("https://bucket.s3.amazonaws.com/a.tar?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIAXYZ%2F2026&"
     "X-Amz-Signature=deadbeef99", "deadbeef99"),
    ("https://acct.blob.core.windows.net/c/a.tar?sv=2020&sig=s3cr3tsig&se=2027", "s3cr3tsig"),
    ("https://h/a.tar?token=tok123abc", "tok123abc"),
    ("s3://key:verysecret@bucket/a.tar", "verysecret"),
])
def test_redact_url_masks_userinfo_and_signed_url_tokens(url, secret):
    out = redact_url(url)
    assert secret not in out and "AKIAXYZ" not in out
    assert out.split("://")[0] == url.split("://")[0]  # scheme and host kept for the reader
    assert "127.0.0.1" in out or "amazonaws" in out or "windows" in out or "h/" in out or "bucket" in out
    text = f"warning: cannot open {url} (HTTP 404); retrying"
    assert secret not in redact(text) and redact(text).startswith("warning: cannot open ")
    assert secret not in json.dumps(redact_obj({"shards": [url], "nested": {"u": (url,)}}))


def test_redact_keeps_plain_text_and_urls_without_secrets():
    for s in ("data/demo/pretrain", "https://host/a/{0..3}.tar?part=1", "lr=0.001", 3, None):
        assert redact(s) == s


def test_log_filter_redacts_library_records(caplog):
    install_log_redaction()
    install_log_redaction(logging.getLogger("melstream.test"))
    logger = logging.getLogger("melstream.test")
    with caplog.at_level(logging.WARNING):
        caplog.handler.addFilter(logging.getLogger().filters[-1])
        logger.warning("skipping %s: %s", "http://u:pw9876@h/x.tar", "404")
    assert "pw9876" not in caplog.text and "***@h/x.tar" in caplog.text
