"""The status this operator last wrote, per adapter: so that its echo through the watch wakes nobody, while a
status someone else wrote is put right at once.

The reconcile writes here just before it patches `/status` (the echo may come back before the call returns);
the controller's router asks `overwritten` when an adapter changed only in its status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeladapter.operator.api.status import StatusDocument


class StatusEchoes:
    def __init__(self) -> None:
        self._written: dict[str, dict[str, Any]] = {}

    def wrote(self, uid: str, status: StatusDocument) -> None:
        self._written[uid] = dict(status)

    def overwritten(self, uid: str, status: Mapping[str, object]) -> bool:
        """The object's status differs from what this operator last wrote (someone else wrote it)."""
        written = self._written.get(uid)
        return written is not None and any(status.get(key) != value for key, value in written.items())

    def forget(self, uid: str) -> None:
        self._written.pop(uid, None)
