"""The JSON log line and the masking every record goes through (server.core.logs)."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from pythonjsonlogger.json import JsonFormatter

from server.core.logs import JsonLines, redact


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
