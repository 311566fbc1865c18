"""The SDK's SessionStore protocol on the Django ORM: a conversation continues in any process."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.db.models import Max

from chat.models import TranscriptEntry
from core.db import hot_path_database


class DjangoSessionStore:
    """Mirrors CLI transcripts into `TranscriptEntry` rows; `resume` loads them back.

    Entries with a `uuid` are idempotent (a retried batch adds nothing); order is insertion order.
    """

    def __init__(self, namespace: str = "copilot") -> None:
        self.namespace = namespace

    def _rows(self, key: dict[str, Any]):
        return TranscriptEntry.objects.filter(namespace=self.namespace, project_key=key["project_key"],
                                              session_id=key["session_id"], subpath=key.get("subpath") or "")

    async def append(self, key: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        if entries:
            await hot_path_database(self._append)(key, entries)

    def _append(self, key: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        rows = [TranscriptEntry(namespace=self.namespace, project_key=key["project_key"], session_id=key["session_id"],
                                subpath=key.get("subpath") or "", uuid=entry.get("uuid"), entry=entry)
                for entry in entries]
        TranscriptEntry.objects.bulk_create(rows, ignore_conflicts=True)

    async def load(self, key: dict[str, Any]) -> list[dict[str, Any]] | None:
        entries = await database_sync_to_async(lambda: list(self._rows(key).values_list("entry", flat=True)))()
        return entries or None

    async def list_sessions(self, project_key: str) -> list[dict[str, Any]]:
        def read():
            return list(TranscriptEntry.objects.filter(namespace=self.namespace, project_key=project_key, subpath="")
                        .values("session_id").annotate(last=Max("created_at")))

        return [{"session_id": row["session_id"], "mtime": int(row["last"].timestamp() * 1000)}
                for row in await database_sync_to_async(read)()]

    async def delete(self, key: dict[str, Any]) -> None:
        def remove():
            rows = TranscriptEntry.objects.filter(namespace=self.namespace, project_key=key["project_key"],
                                                  session_id=key["session_id"])
            if key.get("subpath"):
                rows = rows.filter(subpath=key["subpath"])
            rows.delete()

        await database_sync_to_async(remove)()

    async def list_subkeys(self, key: dict[str, Any]) -> list[str]:
        def read():
            return sorted(set(TranscriptEntry.objects.filter(
                namespace=self.namespace, project_key=key["project_key"], session_id=key["session_id"])
                .exclude(subpath="").values_list("subpath", flat=True)))

        return await database_sync_to_async(read)()
