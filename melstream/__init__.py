"""melstream: self-supervised pretraining of audio encoders on log-mel shards.

The ``melstream`` command (:mod:`melstream.cli`) is the front door to every package: ``ingest``,
``shards``, ``train``, ``eval``, ``models`` and ``bench``.  This package sits on top of the import
graph (docs/contracts.md): it may import every other package and none imports it.
"""
__version__ = "0.1.0"
