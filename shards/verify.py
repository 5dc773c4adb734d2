"""``python -m shards verify DIR``: re-hash every shard and decode every sample."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from .manifest import ManifestError, read_manifest
from .reader import decode_members, iter_tar_samples
from .writer import sha256_file


@dataclass
class VerifyReport:
    shards: int = 0
    samples: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_dir(shard_dir: str, progress: bool = False) -> VerifyReport:
    rep = VerifyReport()
    try:
        m = read_manifest(shard_dir)
    except ManifestError as e:
        rep.problems.append(str(e))
        return rep
    shards = m["shards"]
    it = shards
    if progress:
        from tqdm import tqdm
        it = tqdm(shards, desc="verify", unit="shard")
    seen: set[str] = set()
    for s in it:
        rep.shards += 1
        path = os.path.join(shard_dir, s["name"])
        if not os.path.exists(path):
            rep.problems.append(f"{s['name']}: missing")
            continue
        if os.path.getsize(path) != s.get("bytes"):
            rep.problems.append(f"{s['name']}: size {os.path.getsize(path)} != manifest {s.get('bytes')}")
        if sha256_file(path) != s["sha256"]:
            rep.problems.append(f"{s['name']}: sha256 mismatch")
        n = 0
        try:
            for key, members in iter_tar_samples(path):
                try:
                    decode_members(key, members)
                except Exception as e:  # each bad sample is named, the scan goes on
                    rep.problems.append(f"{s['name']}: sample {key}: {e}")
                if key in seen:
                    rep.problems.append(f"{s['name']}: duplicate key {key}")
                seen.add(key)
                n += 1
        except Exception as e:
            rep.problems.append(f"{s['name']}: unreadable tar: {e}")
        rep.samples += n
        if n != s["samples"]:
            rep.problems.append(f"{s['name']}: {n} samples, manifest says {s['samples']}")
    return rep
