"""The one registry helper (shards.registry.Registry) and the six registries built on it."""
from __future__ import annotations

import sys

import pytest

from shards.registry import DuplicateNameError, Registry, UnknownNameError


def test_register_get_names_and_errors():
    r: Registry[int] = Registry("widget")

    @r.register("b")
    def b() -> int:
        return 2

    r.add("a", 1)
    assert r.names() == ["a", "b"] and r.get("a") == 1 and r["b"] is b and "a" in r and len(r) == 2
    with pytest.raises(DuplicateNameError, match="widget 'a' registered twice"):
        r.add("a", 3)
    assert r.get("a") == 1  # the first registration stays
    with pytest.raises(UnknownNameError) as e:
        r.get("zz")
    assert str(e.value) == "unknown widget 'zz'; known: a, b"  # one line, no KeyError quoting
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)
    r.remove("a")
    assert r.names() == ["b"]


def test_discovery_imports_every_module_of_the_package(tmp_path, monkeypatch):
    pkg = tmp_path / "toyplug"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from shards.registry import Registry\nR = Registry('toy', package='toyplug')\n")
    (pkg / "one.py").write_text("from toyplug import R\nR.add('one', 1)\n")
    (pkg / "two.py").write_text("from toyplug import R\nR.add('two', 2)\n")
    (pkg / "_private.py").write_text("raise RuntimeError('helpers starting with _ are not imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import toyplug

        assert toyplug.R.names() == ["one", "two"] and toyplug.R["two"] == 2
    finally:
        for m in [m for m in sys.modules if m == "toyplug" or m.startswith("toyplug.")]:
            del sys.modules[m]


def _registries():
    from eval.tasks import TASKS
    from ingest.sources import SOURCES
    from models import DECODERS, ENCODERS
    from models.objectives import OBJECTIVES
    from pipeline import SAMPLERS

    return {"encoder": ENCODERS, "decoder": DECODERS, "objective": OBJECTIVES, "sampler": SAMPLERS, "task": TASKS,
            "source": SOURCES}


@pytest.mark.parametrize("kind", ["encoder", "decoder", "objective", "sampler", "task", "source"])
def test_all_six_kinds_use_the_helper(kind):
    reg = _registries()[kind]
    assert isinstance(reg, Registry) and reg.kind == kind and len(reg) > 0
    name = reg.names()[0]
    with pytest.raises(DuplicateNameError):
        reg.add(name, reg[name])
    with pytest.raises(UnknownNameError, match=f"unknown {kind} 'no_such_thing'; known: "):
        reg.get("no_such_thing")


def test_every_objective_fits_its_sampler():
    """Iterates the registries: each objective's default sampler exists and provides its batch keys."""
    from models import ENCODERS
    from models.objectives import OBJECTIVES
    from pipeline import build_sampler

    for name, cls in OBJECTIVES.items():
        s = build_sampler(cls.sampler, **cls.sampler_kwargs)
        assert set(cls.batch_keys) <= set(s.provides), (name, cls.batch_keys, s.provides)
        enc = cls.test_config.get("encoder", cls.default_encoder)[0]
        assert enc in ENCODERS, (name, enc)


@pytest.mark.parametrize("name", __import__("pipeline").SAMPLERS.names())
def test_every_sampler_emits_its_keys(name):
    """Iterates the sampler registry: default options, bound to manifest-like facts, on random clips;
    the collated batch holds every declared key with the batch axis first."""
    from types import SimpleNamespace

    import numpy as np

    from pipeline import build_sampler
    from pipeline.dataset import collate
    from shards.frontend import get_preset

    s = build_sampler(name, n_frames=32)
    s.bind(SimpleNamespace(mean=-4.0, std=3.0, frontend=get_preset("byol_a").to_dict(), vocabulary=["a", "b", "c"]))
    rng = np.random.default_rng(0)
    examples: list = []
    for i in range(20):
        mel = rng.standard_normal((64, s.min_frames + 64)).astype(np.float32)
        out = s(mel, {"key": f"k{i}", "labels": ["a", "c"], "source_id": f"r{i}"}, rng)
        examples += [] if out is None else (out if isinstance(out, list) else [out])
        if len(examples) >= 4:
            break
    examples += s.flush(rng)
    batch = collate(examples[:4], [True] * 4, s, rng)
    assert set(s.keys) <= set(batch), (name, s.keys, sorted(batch))
    assert all(batch[k].shape[0] == 4 for k in s.keys)
