"""Inference serving: a batching engine over the shared generation loop and an OpenAI-compatible HTTP app."""
