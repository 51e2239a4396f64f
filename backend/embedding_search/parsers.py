"""The API's JSON parser: DRF's, with a cap on the body's size and deep nesting answered as a parse error.

The body is read once into bytes (the cap checked against Content-Length before anything is read, and again
against what was read), decoded, and parsed with the standard library, strictly (NaN and Infinity are not JSON).
A body nested deeper than Python's recursion limit (~1,000 levels) raises RecursionError in the parser: that is
a 400 here, not a server error. A view sets ``max_body_bytes`` (the import endpoint: ``IMPORT_MAX_BODY_BYTES``);
others get Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``.
"""
from __future__ import annotations

import json

from django.conf import settings
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils.json import strict_constant


class BodyTooLarge(APIException):
    status_code = 413


def body_limit(parser_context: dict) -> int:
    view = parser_context.get("view")
    return getattr(view, "max_body_bytes", None) or settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def too_large(limit: int, size: str) -> BodyTooLarge:
    return BodyTooLarge(f"The request body is {size}, more than this endpoint takes ({limit:,} bytes): send smaller "
                        "batches (fewer items per request)")


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        limit = body_limit(parser_context)
        request = parser_context.get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise too_large(limit, f"{int(declared):,} bytes")
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise too_large(limit, "larger")
        try:
            text = raw.decode(parser_context.get("encoding", settings.DEFAULT_CHARSET))
            del raw  # one copy of the body at a time
            return json.loads(text, parse_constant=strict_constant if self.strict else None)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply (more than ~1,000 levels of [ or "
                             "{): send a flat JSON object") from None
