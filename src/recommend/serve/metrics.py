"""Counters and a latency histogram of one server process, in Prometheus' text format.

Plain dictionaries guarded by one lock: a request adds to them once, after its answer is
sent, so the cost is a few dictionary updates. With ``--workers N`` every worker counts
its own requests; its series carry a ``worker`` label (the process id) so that scrapes of
different workers are not mistaken for one counter going backwards.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import defaultdict

__all__ = ["BUCKETS", "CONTENT_TYPE", "Metrics"]

#: Upper bounds (seconds) of the latency histogram's buckets.
BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Content type of the text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(**labels: str) -> str:
    parts = []
    for key, value in labels.items():
        text = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append(f'{key}="{text}"')
    return "{" + ",".join(parts) + "}"


class Metrics:
    """What one server process has answered: requests by endpoint and status, latency by
    endpoint, menu rows by route, model reloads, and the model version in service."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = defaultdict(float)
        self._routes: dict[str, int] = defaultdict(int)
        self._reloads: dict[str, int] = defaultdict(int)
        self._in_flight = 0
        self.model_version = ""
        self.model_source = ""
        self.worker = str(os.getpid())

    def started(self) -> None:
        """A request came in."""
        with self._lock:
            self._in_flight += 1

    def finished(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """A request was answered with ``status`` after ``seconds``."""
        slot = bisect.bisect_left(BUCKETS, seconds)
        with self._lock:
            self._in_flight -= 1
            self._requests[(endpoint, method, status)] += 1
            counts = self._buckets.get(endpoint)
            if counts is None:
                counts = self._buckets[endpoint] = [0] * (len(BUCKETS) + 1)
            counts[slot] += 1
            self._sums[endpoint] += seconds

    def served_routes(self, counts: dict[str, int]) -> None:
        """Menu rows served, by route (``personal``, ``cold_segment``, ...)."""
        with self._lock:
            for route, count in counts.items():
                self._routes[route] += count

    def reloaded(self, outcome: str) -> None:
        """A model reload ended: ``ok`` or ``failed``."""
        with self._lock:
            self._reloads[outcome] += 1

    def render(self) -> str:
        """The text exposition format (version 0.0.4)."""
        w = self.worker
        out: list[str] = []
        with self._lock:
            out += [
                "# HELP recommend_requests_total HTTP requests answered.",
                "# TYPE recommend_requests_total counter",
            ]
            for (endpoint, method, status), count in sorted(self._requests.items()):
                labels = _labels(endpoint=endpoint, method=method, status=str(status), worker=w)
                out.append(f"recommend_requests_total{labels} {count}")
            out += [
                "# HELP recommend_request_duration_seconds Time from request to answer.",
                "# TYPE recommend_request_duration_seconds histogram",
            ]
            for endpoint, counts in sorted(self._buckets.items()):
                total = 0
                for bound, count in zip((*BUCKETS, float("inf")), counts, strict=True):
                    total += count
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    labels = _labels(endpoint=endpoint, le=le, worker=w)
                    out.append(f"recommend_request_duration_seconds_bucket{labels} {total}")
                labels = _labels(endpoint=endpoint, worker=w)
                out.append(f"recommend_request_duration_seconds_sum{labels} {self._sums[endpoint]}")
                out.append(f"recommend_request_duration_seconds_count{labels} {total}")
            out += [
                "# HELP recommend_menu_rows_total Menu rows served, by route.",
                "# TYPE recommend_menu_rows_total counter",
            ]
            for route, count in sorted(self._routes.items()):
                out.append(f"recommend_menu_rows_total{_labels(route=route, worker=w)} {count}")
            out += [
                "# HELP recommend_model_reloads_total Model reloads, by outcome.",
                "# TYPE recommend_model_reloads_total counter",
            ]
            for outcome, count in sorted(self._reloads.items()):
                labels = _labels(outcome=outcome, worker=w)
                out.append(f"recommend_model_reloads_total{labels} {count}")
            out += [
                "# HELP recommend_in_flight_requests Requests being answered.",
                "# TYPE recommend_in_flight_requests gauge",
                f"recommend_in_flight_requests{_labels(worker=w)} {self._in_flight}",
                "# HELP recommend_model_info The model in service (value 1).",
                "# TYPE recommend_model_info gauge",
                "recommend_model_info"
                + _labels(version=self.model_version, source=self.model_source, worker=w)
                + " 1",
            ]
        return "\n".join(out) + "\n"
