"""Refusals of the v2 server, in plain words, as the protocol's `{"error": "..."}` with a 4xx status.

KServe's SDK answers a body that fails its pydantic model with FastAPI's 422 `{"detail": [...]}` and anything it
did not foresee with 500; the handlers here turn both request mistakes into 400 `{"error": ...}` sentences that
name the field, and keep the SDK's own 4xx/5xx answers for the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve.errors import InvalidInput
from pydantic import ValidationError
from starlette.exceptions import HTTPException

# pydantic's error types, said for a client that wrote JSON by hand.
_TYPE_WORDS = {
    "missing": "is missing",
    "list_type": "must be a list",
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
}


class Rejected(InvalidInput):
    """A request the v2 server refuses: the reason in words and its HTTP status (400 unless said).

    As an `InvalidInput`, KServe's gRPC interceptor answers it INVALID_ARGUMENT with the same words.
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


# Names FastAPI puts into a location: the body, and the union member it tried (the SDK's route takes a JSON
# InferenceRequest or binary bytes).
_NOT_FIELDS = ("body", "InferenceRequest")


def _where(loc: Iterable[Any]) -> str:
    """pydantic's location ('body', 'InferenceRequest', 'inputs', 0, 'datatype') as a JSON path: inputs[0].datatype."""
    text = ""
    for part in loc:
        if part in _NOT_FIELDS and not text:
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the body"


def plain_words(errors: Iterable[Mapping[str, Any]]) -> str:
    """pydantic's validation errors as one sentence per field, e.g. 'inputs[0].datatype is missing'."""
    sentences = []
    for err in errors:
        kind = err.get("type", "")
        if tuple(err.get("loc", ()))[:2] == ("body", "bytes"):
            continue  # the union's binary member: a JSON body is not meant as bytes
        if kind == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "")
            sentences.append(f"the body is not JSON ({reason})" if reason else "the body is not JSON")
            continue
        words = _TYPE_WORDS.get(kind, str(err.get("msg", "is not valid")).lower())
        sentences.append(f"{_where(err.get('loc', ()))} {words}")
    return "; ".join(dict.fromkeys(sentences)) or "the request is not a v2 inference request"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message})


async def _validation_handler(_: Request, exc: RequestValidationError) -> JSONResponse:
    return _error(400, plain_words(exc.errors()))


async def _pydantic_handler(_: Request, exc: ValidationError) -> JSONResponse:
    return _error(400, plain_words(exc.errors()))


async def _rejected_handler(_: Request, exc: Rejected) -> JSONResponse:
    return _error(exc.status, exc.reason)


async def _http_handler(_: Request, exc: HTTPException) -> JSONResponse:
    return _error(exc.status_code, str(exc.detail))


def add_error_handlers(app: FastAPI) -> None:
    """Answer malformed requests 400 in words, refusals with their own status, unknown routes 404, all as
    `{"error": ...}`; Starlette picks the most specific handler, so the SDK's other handlers stay as they are."""
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(ValidationError, _pydantic_handler)
    app.add_exception_handler(Rejected, _rejected_handler)
    app.add_exception_handler(HTTPException, _http_handler)
