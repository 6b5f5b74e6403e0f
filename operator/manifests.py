"""The Kubernetes manifests shipped with the operator, as package data (`operator/manifests/*.yaml`).

`modeladapter_crd()` is the ModelAdapter CRD that `kubectl apply` installs, that the emulator's tests install,
and that `modeladapter manifests` will print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MANIFESTS = Path(__file__).resolve().parent / "manifests"
CRD_FILE = MANIFESTS / "modeladapter-crd.yaml"


def modeladapter_crd() -> dict[str, Any]:
    loaded = yaml.safe_load(CRD_FILE.read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{CRD_FILE} does not hold one CRD object")
    return loaded
