"""Google Cloud Storage backend of the media store, with V4 signed URLs for playback.

google-cloud-storage is a blocking client, so each call runs in a worker thread. The
service account's key signs URLs locally; API calls use the OAuth token it obtains.
`endpoint` points both at another host (an emulator); unset, Google's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

from google.cloud import storage
from google.oauth2 import service_account

from storage.objects.store import check_key

SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)


class GcsMediaStore:
    def __init__(self, bucket: str, credentials_info: dict[str, Any], endpoint: str | None = None) -> None:
        self.credentials = service_account.Credentials.from_service_account_info(credentials_info, scopes=SCOPES)
        options = {"api_endpoint": endpoint} if endpoint else None
        self._client = storage.Client(project=credentials_info.get("project_id"), credentials=self.credentials,
                                      client_options=options)
        self._bucket = self._client.bucket(bucket)
        self._endpoint = endpoint

    def local_path(self, key: str) -> Path | None:
        return None

    async def put_file(self, local: Path, key: str, content_type: str) -> None:
        blob = self._bucket.blob(check_key(key))
        blob.cache_control = "private, max-age=31536000, immutable"  # paths are immutable per version
        await asyncio.to_thread(blob.upload_from_filename, str(local), content_type=content_type)

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self._bucket.blob(check_key(key)).download_as_bytes)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._bucket.blob(check_key(key)).exists)

    async def delete_prefix(self, prefix: str) -> None:
        def delete() -> None:
            for blob in self._client.list_blobs(self._bucket, prefix=check_key(prefix.rstrip("/")) + "/"):
                blob.delete()

        await asyncio.to_thread(delete)

    def signed_url(self, key: str, expires_in: dt.timedelta) -> str:
        """A V4 signed GET URL: signed locally with the service account's key, no network."""
        return self._bucket.blob(check_key(key)).generate_signed_url(
            version="v4", expiration=expires_in, method="GET", credentials=self.credentials,
            api_access_endpoint=self._endpoint or "https://storage.googleapis.com",
        )
