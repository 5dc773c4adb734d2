"""``python -m shards {inspect,verify,merge} DIR``."""
from __future__ import annotations

import sys

from .cli import cli_main
from .cli_types import OneLineParser
from .inspect_dir import summary
from .manifest import ManifestError, build_manifest
from .verify import verify_dir


@cli_main("python -m shards")
def main(argv: list[str] | None = None, prog: str = "python -m shards") -> int:
    ap = OneLineParser(prog=prog, description="melstream shard directories")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("inspect", help="summary: frontend, counts, hours, bytes per clip, labels").add_argument("dir")
    v = sub.add_parser("verify", help="re-hash and decode every sample; non-zero exit on any problem")
    v.add_argument("dir")
    mg = sub.add_parser("merge", help="build manifest.json and failures.jsonl from the shard records of all jobs")
    mg.add_argument("dir")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "inspect":
            print(summary(a.dir))
            return 0
        if a.cmd == "verify":
            rep = verify_dir(a.dir, progress=sys.stderr.isatty())
            for p in rep.problems:
                print(f"CORRUPT {p}")
            print(f"{'OK' if rep.ok else 'FAILED'}: {rep.shards} shards, {rep.samples} samples, {len(rep.problems)} problems")
            return 0 if rep.ok else 1
        if a.cmd == "merge":
            m = build_manifest(a.dir, command=[*prog.split(), *(argv if argv is not None else sys.argv[1:])])
            print(f"merged {m['totals']['shards']} shards, {m['totals']['clips']} clips into {a.dir}/manifest.json")
            return 0
    except ManifestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
