"""Structured JSON logs with the request id of the request being served on every line."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import sys
import time
from json.encoder import encode_basestring_ascii
from typing import Any, TextIO

from pythonjsonlogger.json import JsonEncoder, JsonFormatter

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
# Text in which none of the patterns above can match: most lines (every access log line
# of a plain path) are cleared by this one search instead of seven substitutions.
_MAY_HOLD_SECRET = re.compile(r"(?i)/media/|/devices/|/webhooks/mailchimp/|/part|sid|token|session|2\|1:")


# Engine.IO and Socket.IO name sessions by bare id in many message shapes: in their
# records every session-id-shaped word is masked.
_SESSION_ID = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{20}(?![A-Za-z0-9_-])")
_SESSION_LOGGERS = ("engineio", "socketio")


def redact(text: str, *, session_ids: bool = False) -> str:
    """`text` with the credentials above masked: what every log line is written through."""
    if _MAY_HOLD_SECRET.search(text):
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


class JsonLines(JsonFormatter):
    """python-json-logger's line, built directly for the common record (a text message,
    no traceback): the access log writes one per request, and the library's general path
    (renames looked up field by field, an encoder built per line) costs several times
    more. Anything else takes the library's path."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
            timestamp=False,
        )
        self._encode = JsonEncoder(ensure_ascii=True).encode
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None or self.converter is not time.localtime:
            return super().formatTime(record, datefmt)
        return self.time_text(record.created, record.msecs)

    def time_text(self, created: float, msecs: float) -> str:
        """logging's default time text, with the part to the second made once per second
        (strftime per line was a tenth of an access line's cost)."""
        second = int(created)
        if self._second[0] != second:
            self._second = (second, time.strftime(self.default_time_format, time.localtime(second)))
        return self.default_msec_format % (self._second[1], msecs)

    def encode(self, line: dict[str, Any]) -> str:
        return self._encode(line)

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info or not isinstance(record.msg, str):
            return super().format(record)
        fields = record.__dict__
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        line = {"ts": record.asctime, "level": record.levelname, "logger": record.name,
                "message": record.message, "request_id": fields.get("request_id")}
        skip, rename = self._skip_fields, self.rename_fields
        for key, value in fields.items():
            if key not in skip and not (isinstance(key, str) and key.startswith("_")):
                line[rename.get(key, key)] = value
        return self._encode(line)


class LoopBufferedHandler(logging.StreamHandler):
    """A stream handler that writes the lines of one event-loop iteration together, at the
    start of the next one, instead of one write and flush per line: the access log writes
    a line per request, and under load an iteration serves many. Order is kept (every line
    passes through the one buffer). A line logged outside an event loop (a thread, start-up,
    exit) is written at once with what is buffered, so is everything once `MAX_BUFFERED`
    characters wait, and `flush` (called by logging at interpreter exit) writes the rest:
    a clean stop loses nothing, and a SIGKILL loses at most the lines of the iteration it
    interrupts.
    """

    MAX_BUFFERED = 64 * 1024

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._size = 0
        self._flush_on: asyncio.AbstractEventLoop | None = None  # the loop a flush is scheduled on

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        self.hold(line)

    def hold(self, line: str) -> None:
        """Write `line` with the others of this loop iteration."""
        with self.lock:  # type: ignore[union-attr]
            self._lines.append(line)
            self._size += len(line)
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is None or self._size >= self.MAX_BUFFERED:
                self.flush()
            elif self._flush_on is not loop:
                self._flush_on = loop
                loop.call_soon(self.flush)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            lines, self._lines, self._size, self._flush_on = self._lines, [], 0, None
            try:
                if lines:
                    self.stream.write(self.terminator.join(lines) + self.terminator)
                if hasattr(self.stream, "flush"):
                    self.stream.flush()
            except Exception:  # a stream that cannot be written: report it as logging does, once
                self.handleError(logging.makeLogRecord({"msg": "%d log lines lost", "args": (len(lines),)}))


_STANDARD_FILTERS = (_RequestIdFilter, _RedactFilter)


class AccessLog:
    """The access log: one line per request, fields `method`, `path`, `route`, `status`,
    `ms` and `ip`, from `logger`.

    When the records of that logger reach exactly one handler, the one `configure_logging`
    installs (its filters, its JSON formatter), the line is made here and handed to it: the
    text the record would become (same fields, order, time and request id; the path
    masked), without a LogRecord, two filters and the generic formatter per request, which
    were most of a request's logging cost. Any other set-up (a test's capturing handler, an
    added filter or handler) is given the record, as before.
    """

    # Masked paths by the path as requested, kept up to this many; dropped all at once when full.
    PATHS_KEPT = 4096

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._paths: dict[str, str] = {}
        self._millisecond: tuple[int, JsonLines | None, str] = (-1, None, "")  # the "ts" JSON text of the last one

    def request(self, method: str | None, path: str, route: str, status: int, ms: float, ip: str) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        masked = self._paths.get(path)
        if masked is None:
            if len(self._paths) >= self.PATHS_KEPT:
                self._paths.clear()
            masked = self._paths[path] = redact(path)
        handler = self._sole_handler()
        if handler is None:
            logger.info("request", extra={"method": method, "path": masked, "route": route, "status": status,
                                          "ms": ms, "ip": ip})
            return
        formatter: JsonLines = handler.formatter  # type: ignore[assignment]
        created = time.time()
        second = int(created)
        msecs = int((created - second) * 1000)
        millisecond = second * 1000 + msecs
        last, made_by, ts = self._millisecond
        if millisecond != last or made_by is not formatter:  # several requests end in the same millisecond under load
            ts = encode_basestring_ascii(formatter.time_text(created, msecs + 0.0))
            self._millisecond = (millisecond, formatter, ts)
        # The JSON encoder's own text for these types (its string escaping, int and float
        # repr), without building an encoder per line.
        q = encode_basestring_ascii
        handler.hold(
            f'{{"ts": {ts}, "level": "INFO", "logger": {q(logger.name)}, "message": "request", '
            f'"request_id": {q(request_id_var.get())}, "method": {"null" if method is None else q(method)}, '
            f'"path": {q(masked)}, "route": {q(route)}, "status": {int(status)!r}, '
            f'"ms": {float(ms)!r}, "ip": {q(ip)}}}'
        )

    def _sole_handler(self) -> LoopBufferedHandler | None:
        """The one standard handler the logger's records reach, or None (what
        `Logger.handle` and `callHandlers` would do with a record, walked without one)."""
        logger: logging.Logger | None = self.logger
        if self.logger.disabled or self.logger.filters:
            return None
        found = None
        while logger is not None:
            handlers = logger.handlers
            if handlers:
                if found is not None or len(handlers) > 1 or not isinstance(handlers[0], LoopBufferedHandler):
                    return None
                found = handlers[0]
            logger = logger.parent if logger.propagate else None
        if found is None or found.level > logging.INFO or not isinstance(found.formatter, JsonLines):
            return None
        for kept in found.filters:
            if type(kept) not in _STANDARD_FILTERS:
                return None
        return found


def json_lines_handler(stream: TextIO) -> LoopBufferedHandler:
    """The process's one log handler: request id, masking, JSON lines, buffered per loop turn."""
    handler = LoopBufferedHandler(stream)
    handler.addFilter(_RequestIdFilter())
    handler.addFilter(_RedactFilter())
    handler.setFormatter(JsonLines())
    return handler


def configure_logging(level: str = "INFO", stream=sys.stderr) -> None:
    handler = json_lines_handler(stream)
    # No line shows the caller's file and line, thread or process: the logging module's
    # documented switches stop it from looking them up for every record.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("pymongo", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
