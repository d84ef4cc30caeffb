"""Evaluation: metrics, log-likelihood scoring, benchmark loaders, generation and code tasks, the lm-eval adapter."""

from llmexp.evaluation.suite import EvalSettings, run_tasks

__all__ = ["EvalSettings", "run_tasks"]
