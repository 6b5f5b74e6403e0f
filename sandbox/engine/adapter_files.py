"""PEFT LoRA adapters on disk, as an engine sees them: read `adapter_config.json`, or write a minimal one.

Like vLLM, the simulated engine accepts a `lora_path` only if that directory holds a PEFT `adapter_config.json`
(otherwise 404 "No adapter found"), and it checks the adapter's rank (`r`, and any `rank_pattern`) and `bias`
against its limits. `write_peft_adapter` makes such a directory for tests and for `modeladapter sandbox`; it
holds a config only, no weights, which is all a simulated engine reads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CONFIG_NAME = "adapter_config.json"


class BrokenAdapterConfig(ValueError):
    """`adapter_config.json` exists but is not a PEFT LoRA config an engine could read, or the path is a file
    (vLLM: "[Errno 20] Not a directory")."""


@dataclass(frozen=True, slots=True)
class PeftAdapter:
    directory: Path
    rank: int
    """The largest rank in the adapter: `r` and every `rank_pattern` value."""
    bias: str
    base_model: str | None


def read_peft_adapter(directory: str | os.PathLike[str]) -> PeftAdapter | None:
    """The adapter in `directory`, or None if there is no `adapter_config.json` to read there."""
    path = Path(directory)
    try:
        text = (path / CONFIG_NAME).read_text()
    except NotADirectoryError:
        raise BrokenAdapterConfig(f"[Errno 20] Not a directory: '{path / CONFIG_NAME}'") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return None
    try:
        config = json.loads(text)
    except ValueError as error:
        raise BrokenAdapterConfig(f"{CONFIG_NAME} is not JSON: {error}") from None
    if not isinstance(config, dict):
        raise BrokenAdapterConfig(f"{CONFIG_NAME} is not a JSON object")
    rank = config.get("r", 8)
    pattern = config.get("rank_pattern") or {}
    if not isinstance(rank, int) or not isinstance(pattern, dict):
        raise BrokenAdapterConfig(f"{CONFIG_NAME} has a non-integer rank")
    ranks = [rank, *(value for value in pattern.values() if isinstance(value, int))]
    bias = config.get("bias", "none")
    base = config.get("base_model_name_or_path")
    return PeftAdapter(path, max(ranks), str(bias), base if isinstance(base, str) else None)


def write_peft_adapter(
    directory: str | os.PathLike[str],
    *,
    rank: int = 8,
    bias: str = "none",
    base_model: str = "tiny",
    target_modules: Sequence[str] = ("q_proj", "v_proj"),
) -> Path:
    """Write a PEFT LoRA `adapter_config.json` into `directory` (created if needed); returns the directory."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": rank,
        "lora_alpha": 2 * rank,
        "lora_dropout": 0.0,
        "bias": bias,
        "target_modules": list(target_modules),
        "rank_pattern": {},
        "alpha_pattern": {},
    }
    (path / CONFIG_NAME).write_text(json.dumps(config, indent=2))
    return path
