from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CONTRACTS_DIR = Path(__file__).resolve().parents[1]

Golden = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def contracts_dir() -> Path:
    return CONTRACTS_DIR


@pytest.fixture(scope="session")
def golden() -> Golden:
    """Loads the golden payload of (type, version) as plain JSON data."""

    def load(event_type: str, version: int = 1) -> dict[str, Any]:
        path = CONTRACTS_DIR / "golden" / event_type / f"v{version}.json"
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    return load
