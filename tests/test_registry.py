"""The one registry helper (shards.registry.Registry) and the six registries built on it."""
from __future__ import annotations

import os
import re
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


def test_register_names_the_class_and_refuses_a_second_spelling():
    r: Registry[type] = Registry("widget")

    @r.register("round")
    class Round:
        pass

    assert Round.name == "round" and r["round"] is Round  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="widget Square sets name='square' but is registered as 'box'"):
        @r.register("box")
        class Square:
            name = "square"
    assert "box" not in r


@pytest.mark.parametrize("kind", ["encoder", "decoder", "objective", "sampler", "task", "source"])
def test_one_idiom_one_file_per_kind(kind):
    """Every kind discovers its own folder, and every registered name sits in a module of that folder
    whose source says ``@<REGISTRY>.register("<name>")`` above the class (the one idiom)."""
    import importlib
    import inspect

    reg = _registries()[kind]
    assert reg.package, f"{kind}: no folder discovery"
    folder = os.path.dirname(importlib.import_module(reg.package).__file__)
    for name, obj in reg.items():
        assert isinstance(obj, type) and obj.name == name, (kind, name)
        path = inspect.getsourcefile(obj)
        assert os.path.dirname(path) == folder, (kind, name, path)
        src = open(path, encoding="utf-8").read()
        assert re.search(rf'@[A-Z_]+\.register\("{re.escape(name)}"\)\nclass {obj.__name__}\b', src), (kind, name, path)


def test_the_old_registration_helpers_are_gone():
    import ingest.sources
    import models
    import models.objectives.base
    import pipeline
    import pipeline.samplers.base
    from eval.tasks import registry

    for mod, helper in ((models, "register_encoder"), (models, "register_decoder"), (pipeline, "register_sampler"),
                        (pipeline.samplers.base, "register_sampler"), (models.objectives.base, "register"),
                        (registry, "register"), (ingest.sources, "register_source")):
        assert not hasattr(mod, helper), (mod.__name__, helper)


def test_tasks_and_sources_carry_their_metadata_as_class_attributes():
    from eval.tasks import TASKS, TaskSpec
    from ingest.sources import SOURCES, SourceSpec

    for name, t in TASKS.items():
        assert issubclass(t, TaskSpec) and t.load.__func__ is not TaskSpec.load.__func__, name
        assert t.family and t.domain in ("environment", "speech", "music", "other") and t.protocol and t.description, name
        assert t.metric == ("mAP" if t.multilabel else "accuracy"), name
    for name, s in SOURCES.items():
        assert issubclass(s, SourceSpec) and s.help and s.run is not SourceSpec.run, name


def test_trainer_hooks_are_declared_on_the_objective_base():
    """``frontend_preset`` has its default on ``Objective``; ``constructor_extras`` comes from each signature."""
    from models.objectives import OBJECTIVES, Objective
    from shards.frontend import PRESETS

    assert Objective.frontend_preset == "hares" and "frontend_preset" in Objective.__dict__
    for name, cls in OBJECTIVES.items():
        assert cls.frontend_preset in PRESETS, name
        assert "preset" in cls.constructor_extras(), name
    assert OBJECTIVES["supervised"].constructor_extras() == {"preset", "num_classes"}
    assert OBJECTIVES["autoencoder"].constructor_extras() == {"preset", "decoder"}
    assert OBJECTIVES["m2d"].frontend_preset == "m2d" and OBJECTIVES["byol_a"].frontend_preset == "hares"


def test_one_default_preset():
    """``DEFAULT_PRESET`` is the one spelling: ``FrontendConfig()`` is that preset and the CLIs default to it."""
    from ingest.__main__ import build_parser
    from ingest.engine import IngestConfig
    from shards.frontend import DEFAULT_PRESET, FrontendConfig, get_preset

    assert FrontendConfig() == get_preset(DEFAULT_PRESET)
    assert IngestConfig(out="x").preset == DEFAULT_PRESET
    assert build_parser().parse_args(["folder", "src", "--out", "o"]).preset == DEFAULT_PRESET


def test_a_new_source_is_one_registered_class():
    """The source idiom of docs/contracts.md, end to end through ``python -m ingest``'s parser."""
    from ingest.__main__ import build_parser
    from ingest.sources import SOURCES, SourceSpec

    @SOURCES.register("toy_source_test")
    class ToySpec(SourceSpec):
        help = "a toy source"

        @staticmethod
        def add_args(p):
            p.add_argument("--thing", default="x")

        @staticmethod
        def run(a):
            return f"source for {a.thing}"

    try:
        a = build_parser().parse_args(["toy_source_test", "--out", "o", "--thing", "y"])
        assert SOURCES[a.source].run(a) == "source for y" and ToySpec.name == "toy_source_test"
    finally:
        SOURCES.remove("toy_source_test")
    assert "toy_source_test" not in SOURCES
