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


def metric_attributes(span_attributes: dict[str, str | int]) -> dict[str, str | int]:
    """The same, for `http.client.request.duration`: without `url.full` and the resend count (not
    metric attributes: one series per URL or attempt number would say nothing a span does not)."""
    return {k: v for k, v in span_attributes.items() if k not in ("url.full", "http.request.resend_count")}
