"""Each objective loss against a direct formula written independently (loops, float64)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from models import distributed as D
from models.objectives import OBJECTIVES, build_objective
from models.objectives import losses as L
from models.objectives.base import ema_update, make_target

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: see conftest


def _rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


# --------------------------------------------------------------------------- Barlow Twins
def _barlow_direct(za, zb, lambd):
    n, d = za.shape
    za = za - za.mean(0)
    zb = zb - zb.mean(0)
    c = [[0.0] * d for _ in range(d)]
    for i in range(d):
        for j in range(d):
            num = sum(za[b, i].item() * zb[b, j].item() for b in range(n))
            den = math.sqrt(sum(za[b, i].item() ** 2 for b in range(n))) * math.sqrt(sum(zb[b, j].item() ** 2 for b in range(n)))
            c[i][j] = num / den
    inv = sum((1 - c[i][i]) ** 2 for i in range(d))
    red = sum(c[i][j] ** 2 for i in range(d) for j in range(d) if i != j)
    return inv + lambd * red, c


def test_barlow_twins_matches_eq3_eq4():
    za, zb = _rand(7, 5, seed=1), _rand(7, 5, seed=2) * 3 + 1
    want, c = _barlow_direct(za, zb, 0.0051)
    got = L.barlow_twins_loss(za, zb, lambd=0.0051, eps=0.0)
    assert got.item() == pytest.approx(want, rel=1e-10)
    assert torch.allclose(L.cross_correlation(za, zb, eps=0.0), torch.tensor(c, dtype=torch.float64), atol=1e-12)
    # lambda weights only the off-diagonal part
    want0, _ = _barlow_direct(za, zb, 0.0)
    assert L.barlow_twins_loss(za, zb, lambd=0.0, eps=0.0).item() == pytest.approx(want0, rel=1e-10)
    assert want != pytest.approx(want0)
    # identical, decorrelated views give zero loss
    a = _rand(8, 4, seed=3)
    q, _ = torch.linalg.qr(a - a.mean(0))  # zero-mean orthonormal columns: C = I
    assert L.barlow_twins_loss(q, q, lambd=1.0, eps=0.0).item() == pytest.approx(0.0, abs=1e-18)
    # default eps (BatchNorm's 1e-5) stays close to the exact formula
    assert L.barlow_twins_loss(za, zb, lambd=0.0051).item() == pytest.approx(want, rel=1e-4)


# --------------------------------------------------------------------------- NT-Xent
def _nt_xent_direct(z1, z2, tau):
    n = z1.shape[0]
    z = torch.cat([z1, z2]).tolist()
    norm = [math.sqrt(sum(v * v for v in row)) for row in z]
    z = [[v / nr for v in row] for row, nr in zip(z, norm)]
    total = 0.0
    for i in range(2 * n):
        pos = i + n if i < n else i - n
        sims = {j: sum(a * b for a, b in zip(z[i], z[j])) / tau for j in range(2 * n) if j != i}
        total += -(sims[pos] - math.log(sum(math.exp(s) for s in sims.values())))
    return total / (2 * n)


def test_nt_xent_matches_direct():
    z1, z2 = _rand(6, 4, seed=4), _rand(6, 4, seed=5)
    for tau in (0.1, 0.5):
        assert L.nt_xent_loss(z1, z2, tau).item() == pytest.approx(_nt_xent_direct(z1, z2, tau), rel=1e-10)


# --------------------------------------------------------------------------- InfoNCE + queue
def test_info_nce_queue_matches_direct():
    q, k, queue = _rand(5, 3, seed=6), _rand(5, 3, seed=7), _rand(9, 3, seed=8) * 2
    tau = 0.07

    def unit(v):
        n = math.sqrt(sum(x * x for x in v))
        return [x / n for x in v]

    total = 0.0
    for i in range(5):
        qi, ki = unit(q[i].tolist()), unit(k[i].tolist())
        pos = sum(a * b for a, b in zip(qi, ki)) / tau
        negs = [sum(a * b for a, b in zip(qi, unit(queue[j].tolist()))) / tau for j in range(9)]
        total += -(pos - math.log(math.exp(pos) + sum(math.exp(s) for s in negs)))
    assert L.info_nce_queue_loss(q, k, queue, tau).item() == pytest.approx(total / 5, rel=1e-10)


# --------------------------------------------------------------------------- bilinear CE (COLA)
def test_bilinear_ce_matches_eq1_eq2():
    z, zp, w = _rand(6, 4, seed=9), _rand(6, 4, seed=10), _rand(4, 4, seed=11)
    total = 0.0
    for i in range(6):
        s = [sum(z[i, a].item() * w[a, b].item() * zp[j, b].item() for a in range(4) for b in range(4)) for j in range(6)]
        total += -(s[i] - math.log(sum(math.exp(v) for v in s)))
    assert L.bilinear_ce_loss(z, zp, w).item() == pytest.approx(total / 6, rel=1e-10)


# --------------------------------------------------------------------------- frame loss (eq. 4)
@pytest.mark.parametrize("m", [0, 1])
def test_frame_contrastive_matches_eq4(m):
    bsz, t, d = 3, 5, 4
    z, w = _rand(bsz, t, d, seed=12), _rand(d, d, seed=13) * 0.5
    total, count = 0.0, 0
    for n in range(bsz):
        for tt in range(t):
            s = [sum(z[n, tt, a].item() * w[a, b].item() * z[n, i, b].item() for a in range(d) for b in range(d)) for i in range(t)]
            num = sum(math.exp(s[tt + tau]) for tau in range(-m, m + 1) if 0 <= tt + tau < t)
            total += -math.log(num / sum(math.exp(v) for v in s))
            count += 1
    assert L.frame_contrastive_loss(z, w, m).item() == pytest.approx(total / count, rel=1e-10)


def test_pitch_loss_matches_eq6():
    ps, po, a = _rand(4, 3, seed=14), _rand(4, 3, seed=15), _rand(4, seed=16)
    want = sum(sum((ps[n, t].item() - po[n, t].item() - a[n].item()) ** 2 for t in range(3)) for n in range(4)) / 4
    assert L.pitch_regression_loss(ps, po, a).item() == pytest.approx(want, rel=1e-10)


# --------------------------------------------------------------------------- BYOL + EMA
def test_byol_normalised_mse():
    q, z = _rand(5, 6, seed=17), _rand(5, 6, seed=18)
    want = []
    for i in range(5):
        qn = q[i] / q[i].norm()
        zn = z[i] / z[i].norm()
        want.append(((qn - zn) ** 2).sum().item())
    got = L.byol_loss(q, z)
    assert torch.allclose(got, torch.tensor(want, dtype=torch.float64), atol=1e-12)


def test_byol_a_views_pass_separately_through_batchnorm():
    """BYOL (Grill et al. 2020) applies each network to each view on its own, so BatchNorm statistics are
    per view: the loss must equal the eq. 1 loss built from single-view passes; ``bn_views=joint`` differs."""
    from models import build_encoder

    torch.manual_seed(0)
    enc = build_encoder("audio_ntt", d=32, n_mels=16)
    obj = build_objective("byol_a", enc, proj_hidden=24, proj_dim=8).double().train()
    x1, x2 = _rand(6, 1, 16, 24, seed=30), _rand(6, 1, 16, 24, seed=31) * 3 + 1  # views of different statistics
    for m in obj.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    with torch.no_grad():
        got = obj({"x1": x1, "x2": x2})["loss"]
        q = [obj.predictor(obj.projector(obj.encoder(x))) for x in (x1, x2)]
        t = [obj.target_projector(obj.target_encoder(x)) for x in (x1, x2)]
        want = (L.byol_loss(q[0], t[1]) + L.byol_loss(q[1], t[0])).mean()
        assert torch.allclose(got, want, atol=1e-12)
        obj.hparams.bn_views = "joint"
        joint = obj({"x1": x1, "x2": x2})["loss"]
    assert abs(float(joint - got)) > 1e-4
    with pytest.raises(ValueError, match="bn_views"):
        build_objective("byol_a", build_encoder("audio_ntt", d=32, n_mels=16), bn_views="both")


def test_ema_update_formula_and_buffers():
    online = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    target = make_target(online)
    assert all(not p.requires_grad for p in target.parameters())
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    online(torch.randn(8, 3))  # changes running stats
    before = [p.clone() for p in target.parameters()]
    ema_update(target, online, 0.99)
    for p_t, p_b, p_o in zip(target.parameters(), before, online.parameters()):
        assert torch.allclose(p_t, 0.99 * p_b + 0.01 * p_o, atol=1e-7)
    for b_t, b_o in zip(target.buffers(), online.buffers()):
        assert torch.equal(b_t, b_o)


# --------------------------------------------------------------------------- temporal gap, triplet
def test_temporal_gap_soft_ce():
    logits, d = _rand(6, seed=19), torch.rand(6, generator=torch.Generator().manual_seed(20), dtype=torch.float64)
    want = 0.0
    for x, y in zip(logits.tolist(), d.tolist()):
        p = 1 / (1 + math.exp(-x))
        want += -(y * math.log(p) + (1 - y) * math.log(1 - p))
    assert L.temporal_gap_loss(logits, d).item() == pytest.approx(want / 6, rel=1e-10)


@pytest.mark.parametrize("normalize", [True, False])
def test_triplet_margin(normalize):
    a, p, n = _rand(7, 3, seed=21), _rand(7, 3, seed=22), _rand(7, 3, seed=23)
    want = 0.0
    for i in range(7):
        ai, pi, ni = a[i].tolist(), p[i].tolist(), n[i].tolist()
        if normalize:
            ai, pi, ni = ([x / math.sqrt(sum(y * y for y in v)) for x in v] for v in (ai, pi, ni))
        dp = sum((x - y) ** 2 for x, y in zip(ai, pi))
        dn = sum((x - y) ** 2 for x, y in zip(ai, ni))
        want += max(0.0, dp - dn + 0.5)
    got = L.triplet_margin_loss(a, p, n, margin=0.5, squared=True, normalize=normalize)
    assert got.item() == pytest.approx(want / 7, rel=1e-10)
    assert want > 0


def test_standardize_per_example():
    x = _rand(3, 1, 4, 5, seed=24) * 7 + 3
    y = L.standardize_per_example(x, eps=0.0)
    for i in range(3):
        assert y[i].mean().item() == pytest.approx(0.0, abs=1e-12)
        assert y[i].var(unbiased=False).item() == pytest.approx(1.0, rel=1e-12)


# --------------------------------------------------------------------------- helpers without torch.distributed
def test_distributed_helpers_are_noops_without_process_group():
    assert not D.is_distributed() and D.world_size() == 1 and D.rank() == 0
    t = torch.randn(3, 2, requires_grad=True)
    assert D.gather_with_grad(t) is t
    g = D.gather_no_grad(t)
    assert torch.equal(g, t) and not g.requires_grad
    assert D.gather_sizes(3) == [3]
    loss = (t * 2).sum()
    assert D.sync_value(loss) is loss


# --------------------------------------------------------------------------- registry / hparams
def test_registry_and_paper_defaults():
    assert set(OBJECTIVES) >= {  # the papers' methods (a new method adds itself: no list to keep here)
        "autoencoder", "audio2vec_cbow", "audio2vec_skipgram", "temporal_gap", "triplet", "cola",
        "multi_strategy", "byol_a", "barlow_twins", "delores_m", "simclr", "supervised",
        "mae", "m2d", "byol_a_v2",
    }
    hp = {n: c.default_hparams() for n, c in OBJECTIVES.items()}
    assert hp["audio2vec_cbow"].lr == 1e-3 and hp["audio2vec_cbow"].batch_size == 256
    assert hp["temporal_gap"].lr == 1e-4 and hp["temporal_gap"].hidden == 64
    assert hp["triplet"].lr == 1e-4
    assert hp["multi_strategy"].alpha == 1.0 and hp["multi_strategy"].beta == 1.0 and hp["multi_strategy"].lr == 1e-4
    assert hp["byol_a"].ema_tau == 0.99 and hp["byol_a"].lr == 3e-4 and hp["byol_a"].proj_hidden == 4096
    assert hp["barlow_twins"].lambd == 0.0051 and hp["barlow_twins"].proj_units == 8192
    assert hp["barlow_twins"].optimizer == "lars" and hp["barlow_twins"].lr == 0.2 and hp["barlow_twins"].lr_bias == 0.0048
    assert hp["delores_m"].temperature == 0.07 and hp["delores_m"].ema_tau == 0.99 and hp["delores_m"].barlow_weight == 5e-5
    assert hp["delores_m"].optimizer == "sgd" and hp["delores_m"].weight_decay == 1e-4
    assert hp["simclr"].temperature == 0.1 and hp["simclr"].warmup_steps == 5000 and hp["simclr"].lr == 2e-4
    with pytest.raises(KeyError):
        build_objective("nope", nn.Linear(1, 1))
