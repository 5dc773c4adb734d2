"""``python -m shards inspect DIR``: a human summary of a shard directory."""
from __future__ import annotations

from .manifest import read_manifest


def summary(shard_dir: str, top_labels: int = 15) -> str:
    m = read_manifest(shard_dir)
    t = m["totals"]
    fe = m["frontend"]
    lines = [
        f"{shard_dir}: {m.get('dataset')}/{m.get('split')}  (format {m['format']} v{m['format_version']})",
        f"frontend   {fe.get('name')} [{m.get('frontend_hash')}]: {fe.get('n_mels')} mels, "
        f"{fe.get('f_min')}-{fe.get('f_max')} Hz, win {fe.get('win_length')}, hop {fe.get('hop_length')}, fft {fe.get('n_fft')}",
        f"codec      {m['codec']['name']} ({'lossless' if m['codec']['lossless'] else 'lossy, max abs error %.4f' % m['codec']['max_abs_error']})",
        f"shards     {t['shards']}   clips {t['clips']}   hours {t['hours']:.3f}   bytes {t['bytes']:,}",
        f"per clip   {t['bytes'] / max(t['clips'], 1) / 1024:.1f} KiB   "
        f"({t['bytes'] / max(t['hours'] * 360, 1e-9) / 1024:.1f} KiB per 10 s)",
        f"log-mel    mean {m['stats']['mean']:.4f}  std {m['stats']['std']:.4f}",
        f"failures   {m['failures']['count']}  {m['failures']['by_reason']}",
    ]
    voc = m["labels"]["vocabulary"]
    counts = m["labels"].get("counts", {})
    names = m["labels"].get("display_names", {})
    lines.append(f"labels     {len(voc)}")
    for lab in sorted(voc, key=lambda k: -counts.get(k, 0))[:top_labels]:
        disp = f" ({names[lab]})" if lab in names else ""
        lines.append(f"  {counts.get(lab, 0):7d}  {lab}{disp}")
    return "\n".join(lines)
