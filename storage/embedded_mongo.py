"""The embedded MongoDB-protocol server: an nx-27017 child process on a private Unix socket.

Used when no MONGO_URL is set, so a fresh machine serves the whole product with nothing
installed beyond the Python requirements. The app still talks the real wire protocol
through pymongo.

Several processes may use one data dir (the server and `run.py createsuperuser`, say).
One of them owns the database process; the others use it. Ownership is an exclusive
`flock` on `owner.lock`, which the kernel drops when the owner dies, however it dies; users
hold a shared lock on `users.lock`. So:

- a process that finds the owner lock taken connects to the running database and never
  stops it;
- only a process holding the owner lock stops or replaces a database process, and it
  replaces one only when that process does not answer (a leftover whose owner died is
  adopted when it answers);
- an owner that stops while others still use the database leaves it running, and the
  first of them to take the owner lock adopts it.

The owner supervises its child: when it exits, it is started again with backoff on the
same socket, and pymongo reconnects to the same address by itself. `owner.json` records
who owns it (pid, command, the child's pid and the socket) for messages and tools.

nx-27017 0.8.1 has no authentication and listens only on TCP, so the child is
`storage/nx_unix.py`, which serves nx-27017's handler on a 0600 socket inside the 0700
data dir, and runs with umask 077 so its files are 0600.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

from pymongo import MongoClient
from pymongo.errors import PyMongoError

log = logging.getLogger(__name__)

LAUNCHER = Path(__file__).with_name("nx_unix.py")
_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes


class EmbeddedMongoError(RuntimeError):
    pass


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) readable by its owner only, and tighten it if it exists."""
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_uid == os.getuid():
        path.chmod(0o700)
    return path


def _tighten_files(directory: Path) -> None:
    """Files written before the umask was set (older installs) become 0600."""
    for entry in directory.iterdir():
        with contextlib.suppress(OSError):
            if entry.is_file() and not entry.is_symlink() and entry.stat().st_mode & 0o077:
                entry.chmod(0o600)


def _socket_path(data_dir: Path) -> Path:
    """The socket inside the data dir, or, when that path is too long for a Unix socket, in
    a private directory under the temp dir named after the data dir (so every process
    using that data dir finds the same one)."""
    inside = data_dir / "nx-27017.sock"
    if len(os.fsencode(inside)) <= _SOCKET_PATH_MAX:
        return inside
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:16]
    short = Path(tempfile.gettempdir()) / f"nameless-{os.getuid()}-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    info = short.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise EmbeddedMongoError(f"{short} is not a private directory of this user; remove it")
    return short / "nx.sock"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class EmbeddedMongo:
    """Own or use the nx-27017 process whose files live in `data_dir`."""

    def __init__(self, data_dir: Path, *, supervise: bool = True, check_interval: float = 0.3,
                 max_backoff: float = 10.0) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.socket: Path | None = None
        self._supervise = supervise
        self._check_interval = check_interval
        self._max_backoff = max_backoff
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None  # the database process, when this process owns it
        self._owner_fd: int | None = None
        self._users_fd: int | None = None
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        if self.socket is None:
            raise EmbeddedMongoError("embedded MongoDB is not started")
        return "mongodb://" + quote(str(self.socket), safe="") + "/"

    @property
    def owner(self) -> bool:
        return self._owner_fd is not None

    @property
    def pid(self) -> int | None:
        """The database process's pid (known to its owner)."""
        return self._pid

    # --- starting ------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> str:
        """Own the database (starting or adopting its process) or use the one another live
        process owns; block until it answers a ping and return its URL."""
        private_dir(self.data_dir)
        _tighten_files(self.data_dir)
        self.socket = _socket_path(self.data_dir)
        self._stopping.clear()
        deadline = time.monotonic() + timeout
        while True:
            if self._try_own():
                self._take_over(deadline)
                break
            if self._hold_users_lock() and self._answers():
                log.info("using the embedded mongodb of another process",
                         extra={"dir": str(self.data_dir), "owner": self._owner_info().get("pid")})
                break
            if time.monotonic() > deadline:
                self._release()
                info = self._owner_info()
                raise EmbeddedMongoError(
                    f"the embedded database in {self.data_dir} belongs to process {info.get('pid', '?')} "
                    f"({info.get('command', 'unknown')}), which did not make it answer within {timeout:.0f}s"
                )
            time.sleep(0.1)
        if self._supervise:
            self._thread = threading.Thread(target=self._watch, name="embedded-mongo", daemon=True)
            self._thread.start()
        return self.url

    def _lock_file(self, name: str) -> int:
        return os.open(self.data_dir / name, os.O_RDWR | os.O_CREAT, 0o600)

    def _try_own(self) -> bool:
        with self._lock:
            if self._owner_fd is not None:
                return True
            fd = self._lock_file("owner.lock")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._owner_fd = fd
            if self._users_fd is not None:  # an owner is not counted among the users
                os.close(self._users_fd)
                self._users_fd = None
            return True

    def _hold_users_lock(self) -> bool:
        """A shared lock that tells the owner someone still uses the database. Taken
        before checking the owner, so an owner that is stopping either sees it or has
        already stopped the process (and this one then takes over)."""
        if self._users_fd is not None:
            return True
        fd = self._lock_file("users.lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._users_fd = fd
        return True

    def _owner_info(self) -> dict:
        try:
            return json.loads((self.data_dir / "owner.json").read_text())
        except (OSError, ValueError):
            return {}

    def _write_owner_info(self) -> None:
        info = {"pid": os.getpid(), "command": " ".join(sys.argv)[:200], "child_pid": self._pid,
                "socket": str(self.socket)}
        path = self.data_dir / "owner.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        os.replace(tmp, path)

    def _leftover(self) -> int | None:
        """A database process on this data dir that no live owner holds."""
        candidates = [self._owner_info().get("child_pid")]
        with contextlib.suppress(OSError, ValueError):
            candidates.append(int((self.data_dir / "nx-27017.pid").read_text().strip()))
        for pid in candidates:
            if isinstance(pid, int) and pid > 0 and pid != os.getpid() and _alive(pid):
                cmdline = _cmdline(pid)
                if ("nx_unix" in cmdline or "nx-27017" in cmdline) and str(self.data_dir) in cmdline:
                    return pid
        return None

    def _take_over(self, deadline: float) -> None:
        """Holding the owner lock: adopt the process that answers, or replace it."""
        with self._lock:
            leftover = self._leftover()
            if leftover is not None and str(self.socket) in _cmdline(leftover) and self._answers():
                self._proc, self._pid = None, leftover
                log.info("adopted the running embedded mongodb", extra={"pid": leftover, "dir": str(self.data_dir)})
            else:
                if leftover is not None:
                    log.warning("stopping a leftover embedded mongodb whose owner is gone", extra={"pid": leftover})
                    self._terminate(leftover, None, 5.0)
                self._spawn(deadline)
            self._write_owner_info()

    def _spawn(self, deadline: float) -> None:
        assert self.socket is not None
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        log_file = self.data_dir / "nx-27017.log"
        cmd = [sys.executable, str(LAUNCHER),
               "--data-dir", str(self.data_dir),
               "--socket", str(self.socket),
               "--log-file", str(log_file),
               "--pid-file", str(self.data_dir / "nx-27017.pid")]
        fd = os.open(self.data_dir / "nx-27017.stderr", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as stderr:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                    start_new_session=True)
        self._proc, self._pid = proc, proc.pid
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise EmbeddedMongoError(
                    f"nx-27017 exited with code {proc.returncode}; see {log_file} and nx-27017.stderr")
            if self._answers():
                log.info("embedded mongodb started", extra={"pid": proc.pid, "dir": str(self.data_dir)})
                return
            time.sleep(0.1)
        self._terminate(proc.pid, proc, 5.0)
        raise EmbeddedMongoError(f"nx-27017 did not answer in time; see {log_file}")

    def _answers(self) -> bool:
        client: MongoClient = MongoClient(self.url, serverSelectionTimeoutMS=300, connectTimeoutMS=300)
        try:
            client.admin.command("ping")
            return True
        except PyMongoError:
            return False
        finally:
            client.close()

    # --- supervision ---------------------------------------------------------------

    def _child_alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self._pid is not None and _alive(self._pid)

    def _watch(self) -> None:
        backoff = 0.5
        while not self._stopping.wait(self._check_interval):
            try:
                with self._lock:
                    if self._stopping.is_set():
                        return
                    if self.owner:
                        if self._child_alive():
                            backoff = 0.5
                            continue
                        code = self._proc.returncode if self._proc is not None else None
                        log.error("embedded mongodb exited; restarting it",
                                  extra={"code": code, "pid": self._pid, "restarts": self.restarts})
                        self.restarts += 1
                        self._spawn(time.monotonic() + 30)
                        self._write_owner_info()
                        backoff = 0.5
                    elif self._try_own():
                        log.info("the owner of the embedded mongodb is gone; taking it over")
                        self._take_over(time.monotonic() + 30)
            except Exception as exc:
                log.error("embedded mongodb restart failed", extra={"reason": str(exc), "retry_s": backoff})
                if self._stopping.wait(backoff):
                    return
                backoff = min(backoff * 2, self._max_backoff)

    # --- stopping ------------------------------------------------------------------

    def _terminate(self, pid: int, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
        """SIGTERM, wait so SQLite checkpoints its journal, then SIGKILL as a last resort."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if (proc.poll() is not None) if proc is not None else not _alive(pid):
                return
            time.sleep(0.05)
        log.warning("embedded mongodb did not stop in time; killing it", extra={"pid": pid})
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        if proc is not None:
            proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the database process if this process owns it and nobody else uses it;
        otherwise leave it running for them."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout + 5)
            self._thread = None
        with self._lock:
            if self.owner and self._pid is not None:
                users = self._lock_file("users.lock")
                try:
                    fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    log.info("embedded mongodb left running for the processes still using it",
                             extra={"pid": self._pid})
                else:
                    self._terminate(self._pid, self._proc, timeout)
                    with contextlib.suppress(FileNotFoundError):
                        (self.data_dir / "owner.json").unlink()
                    log.info("embedded mongodb stopped")
                finally:
                    os.close(users)
            self._proc, self._pid = None, None
            self._release()

    def _release(self) -> None:
        for name in ("_owner_fd", "_users_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def __enter__(self) -> EmbeddedMongo:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
