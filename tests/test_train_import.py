"""Outside weights (an official BYOL-A checkpoint) become an evaluable run directory."""
from __future__ import annotations

import json

import torch

from models import build_encoder
from train.export import load_encoder, normalise_input
from train.import_weights import main


def test_official_style_checkpoint_round_trips(tmp_path):
    torch.manual_seed(0)
    enc = build_encoder("audio_ntt", d=512)
    ckpt = tmp_path / "AudioNTT2020-BYOLA-64x96d512.pth"
    torch.save(enc.state_dict(), ckpt)  # the official release is a plain state_dict with these keys
    out = tmp_path / "official"
    assert main(["--encoder", "audio_ntt", "--encoder-arg", "d=512", "--weights", str(ckpt), "--preset", "byol_a",
                 "--mean", "-5.5", "--std", "5.0", "--out", str(out)]) == 0
    got, meta = load_encoder(str(out))
    assert meta["input_norm"] == {"mean": -5.5, "std": 5.0} and meta["frontend"]["n_mels"] == 64
    x = torch.randn(3, 1, 64, 96)
    with torch.no_grad():
        assert torch.equal(got(x), enc.eval()(x))
        assert torch.allclose(normalise_input(x, meta), (x + 5.5) / 5.0)
    json.loads((out / "encoder.json").read_text())


def test_bad_checkpoints_fail_with_one_line(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    evil = tmp_path / "evil.pth"
    torch.save({"w": Evil()}, evil)
    small = tmp_path / "d512.pth"
    torch.save(build_encoder("audio_ntt", d=512).state_dict(), small)
    cases = [(evil, "not a plain tensor checkpoint"), (small, "size mismatch"), (tmp_path / "none.pth", "no such file")]
    for path, msg in cases:
        rc = main(["--encoder", "audio_ntt", "--encoder-arg", "d=1024", "--weights", str(path), "--preset", "byol_a",
                   "--out", str(tmp_path / "x")])
        err = capsys.readouterr()
        assert rc == 2 and msg in err.err and "pickled code ran" not in err.out, (path, err)
    for bad in (["--per-example", "--mean", "1", "--std", "2"], ["--mean", "1"], ["--mean", "1", "--std", "0"]):
        assert main(["--encoder", "audio_ntt", "--weights", str(small), "--preset", "byol_a", *bad,
                     "--out", str(tmp_path / "y")]) == 2
