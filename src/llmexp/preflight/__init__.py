"""Pre-flight checks of a sweep before anything is queued: compose every trial, estimate it, run one tiny step."""

from llmexp.preflight.check import PreflightReport, run_preflight

__all__ = ["PreflightReport", "run_preflight"]
