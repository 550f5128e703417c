"""A tiny regex router shared by the Coalesce API and the control API."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .responses import ApiError, Response


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-decoded, without query string or trailing slash
    query: Mapping[str, str]  # first value of each parameter
    headers: Mapping[str, str] = field(default_factory=dict)  # names lower-cased
    body: bytes = b""
    client_host: str = ""


Handler = Callable[..., Response]


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """``pattern`` uses ``{name}`` placeholders for one path segment each."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method, re.compile(regex), handler))

    def dispatch(self, request: Request) -> Response:
        allowed: list[str] = []
        for method, regex, handler in self._routes:
            match = regex.fullmatch(request.path)
            if match is None:
                continue
            if method == request.method:
                return handler(request, **match.groupdict())
            allowed.append(method)
        if allowed:
            raise ApiError(405, f"Method {request.method} not allowed", (("Allow", ", ".join(allowed)),))
        raise ApiError(404, f"No such endpoint: {request.method} {request.path}")


def parse_flag(query: Mapping[str, str], name: str, default: bool = False) -> bool:
    """Boolean query flag (``detail=true``); anything unrecognised is a 400."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ApiError(400, f"{name} must be true or false, got {raw!r}")


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise ApiError(400, "Request body must be a JSON object")
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "Request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return parsed
