"""Attributes of a CLIENT span for one POST to SmartPush (HTTP client semantic conventions)."""

from __future__ import annotations

from urllib.parse import urlsplit


def post_attributes(url: str, endpoint: str) -> dict[str, str | int]:
    """For a span of a POST to `url`; `endpoint` says which SmartPush endpoint (token, extended, lite)."""
    parts = urlsplit(url)
    return {
        "http.request.method": "POST",
        "url.full": url,
        "server.address": parts.hostname or "",
        "server.port": parts.port or (443 if parts.scheme == "https" else 80),
        "smartpush.endpoint": endpoint,
    }


# http.client.request.duration's attributes (HTTP client semantic conventions), in key order: the
# four of `metric_key`, then the response's status code or the error's type (None for the other).
UPSTREAM_KEY = (
    "http.request.method", "server.address", "server.port", "smartpush.endpoint",
    "http.response.status_code", "error.type",
)  # fmt: skip


def metric_key(span_attributes: dict[str, str | int]) -> tuple[str | int, ...]:
    """The leading values of `http.client.request.duration`'s key (UPSTREAM_KEY) for a POST
    with these span attributes: without `url.full` and the resend count (not metric attributes:
    one series per URL or attempt number would say nothing a span does not)."""
    a = span_attributes
    return a["http.request.method"], a["server.address"], a["server.port"], a["smartpush.endpoint"]
