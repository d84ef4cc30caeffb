"""Prometheus metrics of the server, in a registry of their own (one per app, so tests and apps don't collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

from llmexp.serving.engine import BatchStats

# The *_created series (one timestamp per metric) only add noise to a scrape.
disable_created_metrics()

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServerMetrics:
    """Requests by endpoint and status, latency, time to first token, tokens, tokens/s, queue depth, batch size."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("llmexp_requests", "HTTP API requests", ["endpoint", "status"], registry=r)
        self.latency = Histogram(
            "llmexp_request_latency_seconds",
            "Time from request to last byte",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_token = Histogram(
            "llmexp_time_to_first_token_seconds",
            "Time from request to first generated token",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter("llmexp_prompt_tokens", "Prompt tokens processed", registry=r)
        self.generated_tokens = Counter("llmexp_generated_tokens", "Tokens generated", registry=r)
        self.tokens_per_second = Gauge(
            "llmexp_generation_tokens_per_second", "Generated tokens per second of the latest batch", registry=r
        )
        self.queue_depth = Gauge("llmexp_queue_depth", "Requests waiting for a batch", registry=r)
        self.in_flight = Gauge("llmexp_requests_in_flight", "Requests accepted and not yet answered", registry=r)
        self.batch_size = Histogram(
            "llmexp_batch_size", "Requests decoded together", buckets=(1, 2, 4, 8, 16, 32, 64), registry=r
        )

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_batch(self, stats: BatchStats) -> None:
        self.batch_size.observe(stats.size)
        self.generated_tokens.inc(stats.new_tokens)
        if stats.seconds > 0:
            self.tokens_per_second.set(stats.new_tokens / stats.seconds)

    def render(self, queue_depth: int) -> bytes:
        self.queue_depth.set(queue_depth)
        return generate_latest(self.registry)
