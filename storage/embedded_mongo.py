"""The embedded MongoDB-protocol server: an nx-27017 child process on a free loopback port.

Used when no MONGO_URL is set, so a fresh machine serves the whole product with nothing
installed beyond the Python requirements. The app still talks the real wire protocol
through pymongo.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

log = logging.getLogger(__name__)


class EmbeddedMongoError(RuntimeError):
    pass


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _executable() -> list[str]:
    found = Path(sys.executable).with_name("nx-27017")
    if found.exists():
        return [str(found)]
    which = shutil.which("nx-27017")
    if which:
        return [which]
    raise EmbeddedMongoError("nx-27017 is not installed: pip install -r requirements.txt")


class EmbeddedMongo:
    """Start, health-check and stop one nx-27017 process whose files live in `data_dir`."""

    def __init__(self, data_dir: Path, host: str = "127.0.0.1") -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise EmbeddedMongoError("embedded MongoDB is not running")
        return f"mongodb://{self.host}:{self.port}/"

    def _stop_leftover(self) -> None:
        """A child orphaned by a hard kill of its parent still holds the files: stop it."""
        pid_file = self.data_dir / "nx-27017.pid"
        try:
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            return
        if "nx-27017" not in cmdline or str(self.data_dir) not in cmdline:
            return
        log.warning("stopping a leftover embedded mongodb", extra={"pid": pid})
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    def start(self, timeout: float = 30.0) -> str:
        """Start the child and block until it answers a ping; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        self.port = _free_port(self.host)
        log_file = self.data_dir / "nx-27017.log"
        cmd = _executable() + [
            "--data-dir", str(self.data_dir),
            "--host", self.host,
            "--port", str(self.port),
            "--log-file", str(log_file),
            "--pid-file", str(self.data_dir / "nx-27017.pid"),
        ]
        with open(self.data_dir / "nx-27017.stderr", "ab") as stderr:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmbeddedMongoError(
                    f"nx-27017 exited with code {self._proc.returncode}; see {log_file} and nx-27017.stderr"
                )
            if self._answers():
                log.info("embedded mongodb started", extra={"port": self.port, "dir": str(self.data_dir)})
                return self.url
            time.sleep(0.1)
        self.stop()
        raise EmbeddedMongoError(f"nx-27017 did not answer within {timeout:.0f}s; see {log_file}")

    def _answers(self) -> bool:
        client: MongoClient = MongoClient(self.url, serverSelectionTimeoutMS=300, connectTimeoutMS=300)
        try:
            client.admin.command("ping")
            return True
        except PyMongoError:
            return False
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait so SQLite checkpoints its journal, then SIGKILL as a last resort."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("embedded mongodb did not stop in time; killing it")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.info("embedded mongodb stopped")

    def __enter__(self) -> EmbeddedMongo:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
