"""Structured JSON logs with the request id of the request being served on every line."""

from __future__ import annotations

import contextvars
import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


# Credentials that travel in URLs and cookies, wherever a log line may quote them: signed
# media tokens, push tokens and party invite codes in paths, Engine.IO session ids and
# tokens in query strings or in Engine.IO's own messages, and Tornado's signed cookie
# values in its cookie warnings.
_SECRETS = (
    (re.compile(r"(/media/)[^/?#\s'\"]+"), r"\1<redacted>"),
    (re.compile(r"(/devices/)[^/?#\s'\"]+"), r"\1<redacted>"),
    (re.compile(r"(/webhooks/mailchimp/)[^/?#\s'\"]+"), r"\1<redacted>"),
    (re.compile(r"(/part(?:y|ies)/)[^/?#\s'\"]+"), r"\1<redacted>"),  # watch-party invite codes
    (re.compile(r"(?i)\b((?:sid|token|access_token|refresh_token)=)[^&#\s'\"]+"), r"\1<redacted>"),
    (re.compile(r"(?i)\b((?:session|sid)\s+)[A-Za-z0-9_-]{12,}"), r"\1<redacted>"),
    (re.compile(r"\b2\|1:\d+\|[^\s'\"]+"), "<redacted>"),
)


# Engine.IO and Socket.IO name sessions by bare id in many message shapes: in their
# records every session-id-shaped word is masked.
_SESSION_ID = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{20}(?![A-Za-z0-9_-])")
_SESSION_LOGGERS = ("engineio", "socketio")


def redact(text: str, *, session_ids: bool = False) -> str:
    """`text` with the credentials above masked: what every log line is written through."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    if session_ids:
        text = _SESSION_ID.sub("<redacted>", text)
    return text


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class _RedactFilter(logging.Filter):
    """Applies `redact` to every record, ours and the libraries' (Tornado's warnings quote
    request URIs and cookie values, Engine.IO's quote session ids)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, session_ids=record.name.startswith(_SESSION_LOGGERS))
        if cleaned != message:
            record.msg, record.args = cleaned, None
        for key in ("path", "uri", "url"):
            value = record.__dict__.get(key)
            if isinstance(value, str):
                record.__dict__[key] = redact(value)
        return True


def configure_logging(level: str = "INFO", stream=sys.stderr) -> None:
    handler = logging.StreamHandler(stream)
    handler.addFilter(_RequestIdFilter())
    handler.addFilter(_RedactFilter())
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
            timestamp=False,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("pymongo", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
