"""The reconcile's one write path to the event log, and its cache of folded states.

`Journal.append(pass)` appends everything the pass decided since its last append, in one transaction that
expects the version the pass started from; another writer having appended first is `ConcurrencyConflict`,
which goes up to the one place that handles it (`Reconciler.reconcile`). A pass appends ahead of its engine
calls (so a crash in between leaves placements a restart can check and clean up, never a copy nobody knows
of) and once at its end. What was appended is then told as Kubernetes Events (`notices`), and handed to
`on_appended` (the controller's log of each adapter's story): every event the operator records passes here,
whether a pass over a live object, an orphan's clean-up or a deletion appended it.

Folded states are cached per uid and topped up with newer events: this process is the only writer while it
leads, and a conflict drops the cached state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from modeladapter.fsm.events import RecordedEvent, stamp
from modeladapter.fsm.state import AdapterState, fold
from modeladapter.operator.kube.events import EventRecorder
from modeladapter.operator.reconcile.log_health import LogHealth
from modeladapter.operator.reconcile.notices import events_for
from modeladapter.operator.reconcile.passes import Pass
from modeladapter.store import SqlEventStore


class Journal:
    def __init__(self, store: SqlEventStore, recorder: EventRecorder) -> None:
        self.store = store
        self.recorder = recorder
        self.health = LogHealth()
        """Whether the last appends could be written (readiness)."""
        self.on_appended: Callable[[Sequence[RecordedEvent]], None] | None = None
        """Called with what each append wrote, once it is written."""
        self._states: dict[str, AdapterState] = {}

    async def load(self, uid: str) -> AdapterState:
        """The adapter's state: the cached fold, topped up with what the log holds after it."""
        cached = self._states.get(uid, AdapterState())
        state = fold(await self.store.read(uid, after=cached.version), cached)
        self._states[uid] = state
        return state

    def drop(self, uid: str) -> None:
        self._states.pop(uid, None)

    async def append(self, step: Pass) -> None:
        """Append what `step` decided since its last append (nothing to do if it decided nothing)."""
        if not step.pending:
            return
        payloads = list(step.pending)
        began = time.perf_counter()
        try:
            recorded = await self.store.append(
                step.uid,
                stamp(payloads, at=step.now, reconcile_id=step.reconcile_id, observed_generation=step.generation),
                expected_version=step.base.version,
                namespace=step.ref.namespace,
                name=step.ref.name,
            )
        except Exception as error:
            self.health.append_failed(error)
            raise
        self.health.append_succeeded()
        step.appended_as(recorded, time.perf_counter() - began)
        if self.on_appended is not None:
            self.on_appended(recorded)
        self._states[step.uid] = step.base
        notices = events_for(payloads, step.state, namespace=step.ref.namespace, name=step.ref.name)
        if not step.ref.resource_version:
            # The object is gone (an orphan's clean-up): only what someone must act on is worth an Event.
            notices = [notice for notice in notices if notice.type == "Warning"]
        if notices:
            await self.recorder.record(step.ref, notices)
