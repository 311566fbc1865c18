"""The API's JSON parser: malformed or too deeply nested bodies are a 400, never a 500."""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from core.errors import BadInput
from core.untrusted_json import parse_json


class UntrustedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", "utf-8")
        try:
            return parse_json(stream.read().decode(encoding))
        except UnicodeDecodeError:
            raise ParseError(f"the body is not {encoding} text") from None
        except BadInput as exc:
            raise ParseError(exc.message) from None
