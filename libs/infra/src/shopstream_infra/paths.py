"""Where local infrastructure keeps downloads (cache) and running state (pids, data dirs, logs)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SHOPSTREAM_CACHE"
STATE_ENV = "SHOPSTREAM_STATE"


def _is_workspace_root(path: Path) -> bool:
    pyproject = path / "pyproject.toml"
    # Member packages have their own pyproject.toml; only the root declares the workspace.
    return pyproject.is_file() and "[tool.uv.workspace]" in pyproject.read_text(encoding="utf-8")


def repo_root() -> Path | None:
    """The uv workspace root: found from this (editable-installed) file first, then from the cwd."""
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for candidate in (start, *start.parents):
            if _is_workspace_root(candidate):
                return candidate
    return None


def _default_under_repo(name: str, fallback: Path) -> Path:
    root = repo_root()
    return root / name if root is not None else fallback


def cache_root() -> Path:
    """Downloads that are expensive to redo and safe to share between checkouts (`$SHOPSTREAM_CACHE`)."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return _default_under_repo(".cache", Path.home() / ".cache" / "shopstream")


def state_root() -> Path:
    """State of infrastructure started by `shopstream infra up` (`$SHOPSTREAM_STATE`)."""
    configured = os.environ.get(STATE_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return _default_under_repo(".local", Path.home() / ".local" / "state" / "shopstream")
