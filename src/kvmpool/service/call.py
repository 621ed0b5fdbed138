"""What a route sees (``Call``), what it answers (``Reply``), and how it is declared (``Route``).

Routes are plain functions ``(Service, Call) -> Reply`` listed in a table; the same table
drives dispatch, body checks, metrics names and the OpenAPI document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from kvmpool.errors import InvalidArgument
from kvmpool.service.schema import Body, Field, parse_body

if TYPE_CHECKING:
    from kvmpool.service.app import Service


@dataclass
class Call:
    method: str
    params: dict[str, str]  # path parameters, percent-decoded
    query: dict[str, str]
    headers: Mapping[str, str]
    raw: bytes = b""  # the body (JSON routes); empty for streaming routes
    stream: BinaryIO | None = None  # the request body, for streaming routes
    length: int = 0  # Content-Length of a streamed body
    body: dict[str, object] = field(default_factory=dict)

    def text(self, key: str) -> str | None:
        value = self.body.get(key)
        return value if isinstance(value, str) else None

    def flag(self, key: str) -> bool:
        return self.body.get(key) is True

    def number(self, key: str) -> int | None:
        value = self.body.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def query_int(self, key: str) -> int | None:
        value = self.query.get(key)
        if value is None or value == "":
            return None
        if not value.isdigit():
            raise InvalidArgument(f"query parameter '{key}' must be a non-negative integer")
        return int(value)

    def query_flag(self, key: str) -> bool:
        value = self.query.get(key, "").lower()
        if value not in ("", "0", "1", "true", "false", "yes", "no"):
            raise InvalidArgument(f"query parameter '{key}' must be true or false")
        return value in ("1", "true", "yes")


@dataclass
class Reply:
    status: int = 200
    data: object = None  # JSON
    text: str | None = None  # or text
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    file: str | None = None  # or a file to stream (then removed if ``remove_file``)
    remove_file: bool = False
    job: bool = False  # a job was started: the job's end is what metrics count

    def payload(self) -> bytes:
        if self.text is not None:
            return self.text.encode("utf-8")
        return (json.dumps(self.data, indent=1) + "\n").encode("utf-8")


Handler = Callable[["Service", Call], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # /api/pools/{pool}/volumes/{vol}
    handler: Handler
    op: str  # operation name for metrics and the OpenAPI operationId
    summary: str
    body: Body | None = None  # JSON body fields (None: no body)
    query: tuple[Field, ...] = ()
    responses: Mapping[int, str] = field(default_factory=lambda: {200: "done"})
    stream_in: bool = False  # the body is raw bytes, streamed (upload)
    public: bool = False  # answered without a token (the page's login, the page itself)
    tag: str = "pools"
    returns: str | None = None  # the 2xx answer: a component schema name, "[Name]" a list
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path)
        object.__setattr__(self, "regex", re.compile(f"^{pattern}$"))

    def parse(self, call: Call) -> None:
        if self.body is not None:
            call.body = parse_body(call.raw, self.body)
