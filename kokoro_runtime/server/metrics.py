"""Prometheus metrics for the server (prometheus-client), in a registry of the app's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
_RTF = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("kokoro_requests", "Speech requests admitted, by mode and response format",
                                ["mode", "format", "stream_format"], registry=r)
        self.errors = Counter("kokoro_request_errors", "Requests that ended in an error, by kind", ["kind"],
                              registry=r)
        self.queue_depth = Gauge("kokoro_queue_depth", "Chunks waiting for a free instance", registry=r)
        self.busy = Gauge("kokoro_instances_busy", "Instances rendering a chunk now", registry=r)
        self.in_flight = Gauge("kokoro_requests_in_flight", "Requests admitted and not finished", registry=r)
        self.ttfa = Histogram("kokoro_time_to_first_audio_seconds",
                              "From the request's arrival to its first audio bytes being sent", ["cache"],
                              buckets=_LATENCY, registry=r)
        self.latency = Histogram("kokoro_request_duration_seconds", "From arrival to the last byte sent",
                                 buckets=_LATENCY, registry=r)
        self.rtf = Histogram("kokoro_real_time_factor", "Model time per second of audio, per rendered request",
                             buckets=_RTF, registry=r)
        self.audio_seconds = Counter("kokoro_audio_seconds", "Seconds of audio sent", registry=r)
        self.cache_hits = Counter("kokoro_cache_hits", "Requests answered from the rendered-audio cache", registry=r)
        self.cache_misses = Counter("kokoro_cache_misses", "Requests rendered by the model", registry=r)
        self.cache_bytes = Gauge("kokoro_cache_bytes", "Bytes of audio held by the cache", registry=r)
        self.cache_entries = Gauge("kokoro_cache_entries", "Responses held by the cache", registry=r)
        self.disconnects = Counter("kokoro_client_disconnects", "Streams stopped because the client left",
                                   registry=r)

    def bind(self, engine) -> None:
        """Gauges read the engine when scraped."""
        self.queue_depth.set_function(engine.queue_depth)
        self.busy.set_function(engine.busy_instances)
        self.in_flight.set_function(lambda: engine.active)
        self.cache_bytes.set_function(lambda: engine.cache.bytes)
        self.cache_entries.set_function(lambda: len(engine.cache))

    def observe(self, event: str, data: dict) -> None:
        if event == "cache":
            (self.cache_hits if data["hit"] else self.cache_misses).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
