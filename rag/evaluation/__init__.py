"""Evaluation: the eval set through ``Engine.ask`` (the chat's code path) vs a llama-index baseline.

``rag eval`` (``rag.evaluation.cli``) runs ``runner.run_eval``, scores each answer with the
pure functions in ``metrics``, and writes ``report.json``, ``report.md`` and plots (``report``).
Thresholds for the CI gate live in ``eval/thresholds.toml``.
"""
