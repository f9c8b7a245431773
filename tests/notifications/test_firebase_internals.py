"""The firebase-admin internals the push client builds on, pinned.

`server/notifications/push.py` reaches into firebase-admin's messaging service: it replaces
the service's async HTTP client (so the library does not retry behind the outbox, which
retries durably) and, for a test or a regional endpoint, its FCM URLs. Those are private
attributes. An upgrade that renames or stops reading them must fail here, before pushes
silently go to the wrong place or get retried twice: re-read the changed source, adapt
push.py, then update the digest.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect

import pytest
from firebase_admin import _http_client, messaging

VERSION = "7.7.0"

# sha256 (first 16 hex digits) of each function's source, and why push.py depends on it.
DIGESTS = {
    "_get_messaging_service": ("a4d846d9e757b8f8", "push.py gets the app's service from it to replace parts of it"),
    "_MessagingService.__init__": ("43c0e5dd1cd6ea69", "sets _fcm_url, _fcm_topic_url, _credential and _async_client"),
    "_MessagingService.send_each_async": ("988dd0eeed2c6d6e", "must send through self._async_client to self._fcm_url"),
    "_MessagingService._make_topic_management_request_v1_async": (
        "449765169b4c65d2", "must build topic URLs from self._fcm_topic_url and send through self._async_client"),
    "HttpxAsyncClient.__init__": ("1c9084c1cef4f2db", "push.py builds one with retry_config=HttpxRetry(max_retries=0)"),
    "HttpxRetry.__init__": ("bfe7509ac2070a71", "max_retries=0 must mean a single attempt"),
}


def _resolve(name: str) -> object:
    owner_name, _, attr = name.rpartition(".")
    if not owner_name:
        return getattr(messaging, attr)
    for module in (messaging, _http_client):
        owner = getattr(module, owner_name, None)
        if owner is not None:
            return getattr(owner, attr)
    raise AttributeError(name)


def test_firebase_admin_is_the_version_read() -> None:
    assert importlib.metadata.version("firebase-admin") == VERSION, (
        "firebase-admin changed: re-read the internals pinned in this file before moving the pin")


@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_internals_relied_on_are_unchanged(name: str) -> None:
    digest = hashlib.sha256(inspect.getsource(_resolve(name)).encode()).hexdigest()[:16]  # type: ignore[arg-type]
    expected, why = DIGESTS[name]
    assert digest == expected, f"{name} changed ({why}): adapt server/notifications/push.py"


def test_the_attributes_push_replaces_are_read_where_push_expects() -> None:
    send = inspect.getsource(messaging._MessagingService.send_each_async)
    topics = inspect.getsource(messaging._MessagingService._make_topic_management_request_v1_async)
    assert "self._async_client.request" in send and "self._fcm_url" in send
    assert "self._async_client.request" in topics and "self._fcm_topic_url" in topics
