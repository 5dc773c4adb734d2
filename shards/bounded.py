"""Reading files from outside with bounds: a size limit, and for YAML a limit on the expanded size.

Every config, label list or manifest that a user (or another team) hands us is read through these, so
``/dev/zero``, a 10 GB "config" or a YAML alias bomb (9 levels of 9 aliases: 9**9 nodes once expanded)
is refused with one line instead of exhausting the memory of a shared node::

    text = read_text_bounded(path)                      # str; at most MAX_TEXT_BYTES
    cfg = load_yaml_bounded(path)                       # safe YAML, at most MAX_YAML_NODES once expanded
    value = parse_yaml_bounded("[1, 2]", "--hp betas")  # the same for a string (a flag's value)
    meta = load_json_bounded(path, max_bytes=64 << 20)

Problems with the content are :class:`BoundError` (a ``ValueError``) whose text is one line starting
with the file's name; ``OSError`` (missing file, permissions) is left to the caller.
"""
from __future__ import annotations

import json
from typing import Any

import yaml

__all__ = ["MAX_TEXT_BYTES", "MAX_YAML_NODES", "BoundError", "read_bytes_bounded", "read_text_bounded",
           "parse_yaml_bounded", "load_yaml_bounded", "parse_json_bounded", "load_json_bounded", "human_bytes"]

MAX_TEXT_BYTES = 1 << 20  # configs, CSVs, label lists: 1 MiB is far beyond any real one
MAX_YAML_NODES = 100_000  # scalars + collections after aliases are expanded (each use of an alias counts)


class BoundError(ValueError):
    """A file or value from outside is too large or not what it claims; ``str(err)`` is one line."""


def human_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


def read_bytes_bounded(path: str, max_bytes: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of ``path``, or :class:`BoundError` when it holds more than ``max_bytes`` (only
    ``max_bytes + 1`` are ever read, so endless files such as ``/dev/zero`` are safe)."""
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise BoundError(f"{path}: larger than {human_bytes(max_bytes)}; refusing to read it")
    return data


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BoundError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def read_text_bounded(path: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """UTF-8 text of ``path`` (a leading BOM dropped), at most ``max_bytes``; :class:`BoundError` otherwise."""
    return _decode(read_bytes_bounded(path, max_bytes), path)


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that counts every node as often as aliases make it appear, and refuses a
    document whose expanded size passes ``max_nodes`` while composing it (before any object is built)."""

    max_nodes = MAX_YAML_NODES
    where = "<yaml>"

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            anchor = self.peek_event().anchor
            target = self.anchors.get(anchor)
            if target is not None and id(target) not in self._sizes:
                raise BoundError(f"{self.where}: YAML alias *{anchor} refers to a node that contains it (a cycle)")
        node = super().compose_node(parent, index)
        if id(node) not in self._sizes:
            if isinstance(node, yaml.SequenceNode):
                size = 1 + sum(self._sizes[id(c)] for c in node.value)
            elif isinstance(node, yaml.MappingNode):
                size = 1 + sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
            else:
                size = 1
            if size > self.max_nodes:
                raise BoundError(f"{self.where}: YAML expands to more than {self.max_nodes} nodes once its aliases "
                                 f"are resolved (an alias bomb?); refusing it")
            self._sizes[id(node)] = size
        return node


def parse_yaml_bounded(text: str, where: str, max_nodes: int = MAX_YAML_NODES) -> Any:
    """Safe YAML from ``text``; ``where`` names it in messages (``cfg.yaml``, ``--hp lr``).  Syntax errors
    become ``"<where>:<line>:<col>: invalid YAML (<problem>)"``; tags such as ``!!python/object`` are
    refused (safe loader), and so are cycles and documents that expand past ``max_nodes``."""
    loader = _BoundedLoader(text)
    loader.max_nodes, loader.where = max_nodes, where
    try:
        return loader.get_single_data()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark is not None else where
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise BoundError(f"{at}: invalid YAML ({what})") from None
    except RecursionError:
        raise BoundError(f"{where}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def load_yaml_bounded(path: str, max_bytes: int = MAX_TEXT_BYTES, max_nodes: int = MAX_YAML_NODES) -> Any:
    """Safe YAML from file ``path``: at most ``max_bytes`` and ``max_nodes`` expanded nodes."""
    return parse_yaml_bounded(read_text_bounded(path, max_bytes), path, max_nodes)


def parse_json_bounded(data: bytes | str, where: str) -> Any:
    """JSON from ``data``; one-line :class:`BoundError` for bad UTF-8, bad JSON or too deep nesting."""
    text = _decode(data, where) if isinstance(data, bytes) else data
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BoundError(f"{where}: invalid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise BoundError(f"{where}: JSON nested too deeply") from None


def load_json_bounded(path: str, max_bytes: int = MAX_TEXT_BYTES) -> Any:
    """JSON from file ``path``, at most ``max_bytes``."""
    return parse_json_bounded(read_bytes_bounded(path, max_bytes), path)
