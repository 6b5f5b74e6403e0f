"""The operator's log tells each adapter's life, one JSON line per step, and the example in docs/operations.md
is made of lines a real `modeladapter run` wrote.

The life: one pod refuses the first load (a retry loads it), the adapter runs, the pod stops being Ready and
the adapter switches to a second pod, then the adapter is deleted and unloaded everywhere.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Final

from modeladapter.operator.controller.story import story_line
from modeladapter.sandbox.engine.faults import Fault
from tests.e2e.conftest import Sandbox, adapter_manifest

GUIDE: Final = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
STORY_LOGGER: Final = "modeladapter.operator.controller.story"
# What differs from run to run: the line's time and ids, and the clock times and durations a message quotes.
VARYING_FIELDS: Final = ("time", "uid", "reconcile_id")
CLOCK_TIME: Final = re.compile(r"\b\d{2}:\d{2}:\d{2}\.\d{3}\b")
DURATION: Final = re.compile(r"\bin \d+ ms\b")


def comparable(line: dict[str, Any]) -> dict[str, Any]:
    """The line without what varies between runs."""
    kept = {key: value for key, value in line.items() if key not in VARYING_FIELDS}
    kept["message"] = DURATION.sub("in N ms", CLOCK_TIME.sub("HH:MM:SS.mmm", str(kept["message"])))
    return kept


def documented_lines() -> list[dict[str, Any]]:
    """The JSON lines of the ```json block in the guide's "Logs" section."""
    text = GUIDE.read_text()
    section = text[text.index("\n## Logs\n") :]
    section = section[: section.index("\n## ", 1)]
    block = re.search(r"```json\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the Logs section has no ```json block"
    return [json.loads(line) for line in block.group(1).splitlines() if line.strip()]


async def live_a_life(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Run a real operator through one adapter's life; its JSON log lines."""
    (first,) = await sandbox.add_pods(1)
    sandbox.engine(first).inject(Fault(status=503), route="load", times=1)
    operator = sandbox.spawn_operator("--no-leader-election")
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running", timeout=20)
    (second,) = await sandbox.add_pods(1)
    await sandbox.kubelet.mark_not_ready(first)
    await sandbox.eventually(
        lambda: sandbox.status_where(lambda s: s.get("instances") == [second] and s.get("phase") == "Running"),
        timeout=20,
        what=f"the switch to {second}",
    )
    await sandbox.delete()
    await sandbox.eventually(sandbox.gone, timeout=20, what="the deletion")
    assert await operator.terminate() == 0
    lines = []
    for text in operator.log().splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            raise AssertionError(f"a log line that is not JSON: {text!r}") from None
    return lines


async def test_each_step_of_a_life_is_one_line_with_adapter_namespace_pod_reason_and_attempt(sandbox: Sandbox) -> None:
    lines = await live_a_life(sandbox)
    story = [line for line in lines if line["logger"] == STORY_LOGGER]
    for line in story:
        assert {"adapter", "namespace", "pod", "reason", "attempt", "event", "uid", "reconcile_id"} <= set(line)
        assert (line["adapter"], line["namespace"]) == ("qwen-code-lora", "default")
        assert line["level"] in ("INFO", "WARNING")
    told = [(line["level"], line["event"], line["reason"], line["pod"], line["attempt"]) for line in story]
    first, second = "qwen-coder-1-5b-instruct-0", "qwen-coder-1-5b-instruct-1"
    for step in [
        ("INFO", "PhaseChanged", "Scheduled", None, None),
        ("WARNING", "LoadFailed", "LoadFailed", first, 1),
        ("INFO", "LoadStarted", "Retrying", first, 2),
        ("INFO", "LoadSucceeded", "LoadSucceeded", first, 2),
        ("INFO", "PhaseChanged", "ModelAdapterAvailable", None, None),
        ("WARNING", "PodLost", "PodLost", first, None),
        ("WARNING", "PodSwitched", "PodSwitched", second, None),
        ("INFO", "PhaseChanged", "Terminating", None, None),
        ("INFO", "Unloaded", "Unloaded", second, None),
        ("INFO", "Finalized", "Finalized", None, None),
    ]:
        assert step in told, f"{step} was not logged; the story: {told}"
    # Every event the log recorded at INFO or above is told once, in the order it was recorded.
    recorded = await sandbox.store.read(story[0]["uid"])
    assert [line["event"] for line in story] == [
        event.payload.type for event in recorded if story_line(event.payload).level >= logging.INFO
    ]


async def test_the_guides_example_lines_are_lines_the_operator_wrote_in_that_order(sandbox: Sandbox) -> None:
    examples = documented_lines()
    assert len(examples) >= 8, "the guide shows one adapter's life"
    for example in examples:
        assert set(VARYING_FIELDS) <= set(example), f"an example line without {VARYING_FIELDS}: {example}"
    written = [comparable(line) for line in await live_a_life(sandbox)]
    position = 0
    for example in map(comparable, examples):
        found = next((i for i in range(position, len(written)) if written[i] == example), None)
        assert found is not None, (
            f"the guide's line {json.dumps(example)} is not among what the operator wrote after the previous "
            "example (same fields, in order):\n" + "\n".join(json.dumps(line) for line in written)
        )
        position = found + 1
