"""HTTP responses and the Coalesce error envelope.

Every error the simulator sends has the documented shape
``{"error": {"errorString": "<code>: <msg>", "errorDetail": "<code>: <msg>"}}`` (doc §2.2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

UNAUTHORIZED_MESSAGE = "Unable to authenticate, please ensure your token is valid."


class _NoBody:
    def __repr__(self) -> str:
        return "NO_BODY"


#: Payload marker for responses without a body (204).
NO_BODY: Any = _NoBody()


@dataclass(frozen=True)
class Response:
    status: int
    payload: Any = NO_BODY  # JSON-able object, or NO_BODY
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self, extra_fields: bool = False) -> bytes | None:
        """Serialise the payload; ``extra_fields`` adds schema drift to successful bodies."""
        if self.payload is NO_BODY:
            return None
        payload = self.payload
        if extra_fields and self.status < 400:
            payload = with_extra_field(payload)
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def error_payload(status: int, message: str) -> dict[str, dict[str, str]]:
    text = f"{status}: {message}"
    return {"error": {"errorString": text, "errorDetail": text}}


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(status, payload)


def error_response(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, error_payload(status, message), headers)


class ApiError(Exception):
    """Raised anywhere below a route handler to answer with the error envelope."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.headers = headers

    def to_response(self) -> Response:
        return error_response(self.status, self.message, self.headers)


def with_extra_field(value: Any) -> Any:
    """Copy of ``value`` where every JSON object gains ``"simulatorExtra": {"a": 1}``.

    Builds new containers rather than mutating, because payloads share nested objects with
    the simulator state.
    """
    if isinstance(value, dict):
        copied = {key: with_extra_field(item) for key, item in value.items()}
        copied["simulatorExtra"] = {"a": 1}
        return copied
    if isinstance(value, list):
        return [with_extra_field(item) for item in value]
    return value
