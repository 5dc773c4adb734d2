"""melstream eval: downstream evaluation of exported encoders.

``python -m eval run|compare|tasks`` (``eval/__main__.py``); task loaders in ``eval/tasks``; cached
log-mels and embeddings (``eval/cache.py``, ``eval/embed.py``); probes (``eval/probes.py``,
``eval/finetune.py``); reports and plots (``eval/report.py``, ``eval/plots.py``); the trainer's online
probe (``eval/online.py``); the HEAR 2021 API (``eval/hear.py``).  Documentation: docs/evaluation.md.

Note: this package is named ``eval`` like the Python builtin; import it as a package
(``import eval.probes``, ``from eval.online import OnlineProbe``), the builtin stays reachable as
``builtins.eval``.
"""
