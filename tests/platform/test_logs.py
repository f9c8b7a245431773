"""The JSON log line and the masking every record goes through (server.core.logs)."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pythonjsonlogger.json import JsonFormatter

from server.core.logs import AccessLog, JsonLines, LoopBufferedHandler, json_lines_handler, redact, request_id_var

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "secret"), [
    ("GET /media/tok.en123/assets/a/v1/master.m3u8", "tok.en123"),
    ("PUT /api/v1/me/devices/fcm:abcdef123", "fcm:abcdef123"),
    ("POST /webhooks/mailchimp/hooksecret42", "hooksecret42"),
    ("GET /party/invite42", "invite42"),
    ("GET /api/v1/parties/invite43/members", "invite43"),
    ("GET /socket.io/?EIO=4&transport=polling&sid=sessionsecret1", "sessionsecret1"),
    ("GET /x?TOKEN=tokensecret2&y=1", "tokensecret2"),
    ("refresh_token=refreshsecret3", "refreshsecret3"),
    ("Invalid session AbCdEfGhIjKlMnOp", "AbCdEfGhIjKlMnOp"),
    ("bad cookie 2|1:0|10:1700000000|4:name|8:c2VjcmV0|abcdef", "c2VjcmV0"),
])
def test_every_credential_shape_is_masked(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert "<redacted>" in redact(text)


def test_text_without_credentials_is_unchanged() -> None:
    for text in ("/healthz", "/api/v1/titles?genre=drama&sort=new", "request", "Session ended"):
        assert redact(text) == text


def _record(msg: object, args: tuple = (), exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError as err:
            exc_info = (type(err), err, err.__traceback__)
    return logging.getLogger("nameless.test").makeRecord("nameless.test", logging.WARNING, __file__, 1, msg, args,
                                                         exc_info, extra=extra)


@pytest.mark.parametrize("record", [
    _record("request", method="GET", path="/healthz", route="HealthzHandler", status=200, ms=0.42, ip="127.0.0.1",
            request_id="abc"),
    _record("hello %s, %d", ("wörld", 3), when=dt.datetime(2026, 1, 2, 3, 4, 5), raw=b"\x00", none=None, _private=1),
    _record("failed", exc=True, code="x"),
    _record({"event": "dict message"}, request_id="r"),
])
def test_the_line_is_the_one_python_json_logger_writes(record: logging.LogRecord) -> None:
    library = JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
                            timestamp=False)
    ours = JsonLines().format(logging.makeLogRecord(dict(record.__dict__)))
    assert ours == library.format(logging.makeLogRecord(dict(record.__dict__)))


@pytest.fixture
def buffered() -> Iterator[tuple[logging.Logger, io.StringIO, LoopBufferedHandler]]:
    stream = io.StringIO()
    handler = LoopBufferedHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("nameless.test.buffered")
    logger.addHandler(handler)
    logger.propagate, logger.level = False, logging.INFO
    yield logger, stream, handler
    logger.removeHandler(handler)


def test_the_lines_of_one_loop_iteration_are_written_together_at_the_next(buffered) -> None:
    """What a SIGKILL can lose is bounded by this: the lines of the iteration it interrupts."""
    logger, stream, _ = buffered

    async def serve() -> list[str]:
        for n in range(5):
            logger.info("line %d", n)
        held = stream.getvalue()
        await asyncio.sleep(0)  # one turn of the loop, not a wait for time
        return [held, stream.getvalue()]

    held, written = asyncio.run(serve())
    assert held == ""
    assert written == "".join(f"line {n}\n" for n in range(5))


def test_a_line_outside_an_event_loop_is_written_at_once_after_the_held_ones(buffered) -> None:
    logger, stream, _ = buffered

    async def serve() -> None:
        logger.info("in the loop")
        await asyncio.to_thread(logger.info, "from a thread")  # no loop there: written at once, in order

    asyncio.run(serve())
    logger.info("after the loop")
    assert stream.getvalue() == "in the loop\nfrom a thread\nafter the loop\n"


def test_a_full_buffer_is_written_without_waiting_for_the_loop(buffered) -> None:
    logger, stream, handler = buffered

    async def serve() -> str:
        line = "x" * 1000
        for _ in range(handler.MAX_BUFFERED // len(line) + 1):
            logger.info(line)
        return stream.getvalue()

    assert len(asyncio.run(serve())) >= handler.MAX_BUFFERED


def test_a_clean_exit_writes_every_held_line(tmp_path) -> None:
    """Lines logged in the iteration the process exits from are written by logging's own
    flush at interpreter exit."""
    script = (
        "import asyncio, logging, sys\n"
        "from server.core.logs import configure_logging\n"
        "configure_logging('INFO', stream=sys.stderr)\n"
        "async def main():\n"
        "    for n in range(500):\n"
        "        logging.getLogger('nameless.http').info('request', extra={'n': n})\n"
        "    sys.exit(0)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["n"] for line in done.stderr.splitlines()] == list(range(500))


def test_the_time_of_lines_in_the_same_and_the_next_second_is_the_library_one() -> None:
    ours = JsonLines()
    library = JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
                            timestamp=False)
    for created in (1_800_000_000.001, 1_800_000_000.999, 1_800_000_001.0, 1_800_000_001.5, 1_799_999_999.25):
        record = _record("tick", request_id="r")
        record.created, record.msecs = created, int((created - int(created)) * 1000)
        assert ours.format(logging.makeLogRecord(dict(record.__dict__))) == library.format(record)


def test_the_access_line_made_directly_is_the_line_its_record_becomes() -> None:
    """With only the standard handler on the way, the access log writes its line itself;
    with any other handler it logs a record. Both give the same line."""
    stream = io.StringIO()
    root = logging.RootLogger(logging.INFO)  # a hierarchy of its own: pytest's handlers sit on the real root
    handler = json_lines_handler(stream)
    root.addHandler(handler)
    access = AccessLog(logging.Manager(root).getLogger("nameless.http"))
    capture = logging.NullHandler()
    path = '/media/tok.en123/master.m3u8?t="é\\✓'  # masked, and characters JSON escapes

    def both() -> None:
        request_id_var.set("access-0001")
        assert access._sole_handler() is handler
        access.request("GET", path, "PlaybackHandler", 200, 1.25, "127.0.0.1")
        root.addHandler(capture)
        assert access._sole_handler() is None
        access.request("GET", path, "PlaybackHandler", 200, 1.25, "127.0.0.1")
        root.removeHandler(capture)

    contextvars.copy_context().run(both)
    handler.flush()
    direct, logged = (json.loads(line) for line in stream.getvalue().splitlines())
    assert list(direct) == list(logged) == ["ts", "level", "logger", "message", "request_id", "method", "path",
                                            "route", "status", "ms", "ip"]
    assert {**direct, "ts": None} == {**logged, "ts": None}
    assert direct["path"] == '/media/<redacted>/master.m3u8?t="é\\✓' and direct["request_id"] == "access-0001"
    text = stream.getvalue().splitlines()
    assert text[0][text[0].index('"level"'):] == text[1][text[1].index('"level"'):]  # the same text, not just values
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", direct["ts"])
