"""Installed packages vs the lock: one line per mismatch, exit 2 when the venv drifted.

Run by ``make setup`` (after it brought the venv back to the lock) and by ``tests/test_install.py``.
Usage: ``python tests/lockcheck.py [requirements.lock]``.
"""
from __future__ import annotations

import os
import re
import sys
from importlib import metadata

from packaging.markers import Marker
from packaging.utils import canonicalize_name

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)==([^\s;\\]+)\s*(?:;\s*(.+?))?\s*\\?\s*$")


def locked(path: str) -> dict[str, str]:
    """Package -> version pinned for this interpreter and platform (markers evaluated)."""
    pins: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = _PIN.match(line)
            if not m:
                continue
            name, version, marker = m.groups()
            if marker and not Marker(marker).evaluate():
                continue
            pins[canonicalize_name(name)] = version
    if not pins:
        raise ValueError(f"{path}: no pinned packages found")
    return pins


def mismatches(path: str) -> list[str]:
    """One message per locked package that is missing or installed at another version."""
    out = []
    for name, want in sorted(locked(path).items()):
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            out.append(f"{name}: not installed, lock says {want}")
            continue
        if have != want:
            out.append(f"{name}: installed {have}, lock says {want}")
    return out


def main(argv: list[str]) -> int:
    path = argv[0] if argv else os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                             "requirements.lock")
    bad = mismatches(path)
    for line in bad:
        print(f"error: venv differs from {os.path.basename(path)}: {line} (run `make setup`)", file=sys.stderr)
    return 2 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
