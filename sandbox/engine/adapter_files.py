"""PEFT LoRA adapters on disk, as an engine sees them: read `adapter_config.json`, or write a minimal one.

Like vLLM, the simulated engine accepts a `lora_path` only if that directory holds a PEFT `adapter_config.json`
(otherwise 404 "No adapter found"), and it checks the adapter's rank (`r`, and any `rank_pattern`) and `bias`
against its limits. What it "computes" with comes from the files' contents (`PeftAdapter.fingerprint`: the
config and the weights file vLLM would read), so new contents at the same path are new weights.
`write_peft_adapter` makes such a directory for tests and for `modeladapter sandbox`: a config and a stand-in
weights file (not real tensors: real vLLM refuses it, as it refuses any adapter without weights).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

CONFIG_NAME: Final = "adapter_config.json"
WEIGHTS_NAMES: Final = ("adapter_model.safetensors", "adapter_model.bin", "adapter_model.pt")
"""The weights files vLLM looks for, in its order (`vllm/lora/lora_model.py`, `from_local_checkpoint`)."""


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
    fingerprint: str
    """A digest of the config and the first weights file present, as read now: the adapter's "weights"."""


def read_peft_adapter(directory: str | os.PathLike[str]) -> PeftAdapter | None:
    """The adapter in `directory`, or None if there is no `adapter_config.json` to read there."""
    path = Path(directory)
    try:
        raw = (path / CONFIG_NAME).read_bytes()
    except NotADirectoryError:
        raise BrokenAdapterConfig(f"[Errno 20] Not a directory: '{path / CONFIG_NAME}'") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return None
    try:
        config = json.loads(raw)
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
    return PeftAdapter(path, max(ranks), str(bias), base if isinstance(base, str) else None, _fingerprint(path, raw))


def _fingerprint(directory: Path, config: bytes) -> str:
    digest = hashlib.sha256(config)
    for name in WEIGHTS_NAMES:
        try:
            with (directory / name).open("rb") as weights:
                digest.update(b"\0" + name.encode() + b"\0")
                while chunk := weights.read(1 << 20):
                    digest.update(chunk)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            continue
        break
    return digest.hexdigest()[:16]


def write_peft_adapter(
    directory: str | os.PathLike[str],
    *,
    rank: int = 8,
    bias: str = "none",
    base_model: str = "tiny",
    target_modules: Sequence[str] = ("q_proj", "v_proj"),
    weights: bytes | None = None,
) -> Path:
    """Write a PEFT LoRA `adapter_config.json` and a stand-in `adapter_model.safetensors` into `directory`
    (created if needed); returns the directory.

    `weights` are the stand-in's bytes; by default they name the directory, so adapters written to different
    directories answer differently, and writing the same directory again with other `weights` is a new version
    of the adapter at the same path."""
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
    stand_in = weights if weights is not None else f"simulated LoRA weights of {path.resolve()}\n".encode()
    (path / WEIGHTS_NAMES[0]).write_bytes(stand_in)
    return path
