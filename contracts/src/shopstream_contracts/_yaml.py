"""A tiny deterministic YAML writer for JSON-shaped data (dicts, lists, str, int, bool, None).

It exists so the AsyncAPI document can be YAML without a YAML dependency: block style, keys
in the order given, and every string that could be read as something else double-quoted with
JSON escapes (which are valid YAML escapes).
"""

from __future__ import annotations

import json
import re
from typing import Any

_PLAIN = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$./\-]*$")
# YAML 1.1 readers (PyYAML among them) turn these into booleans or null when unquoted.
_RESERVED = {"y", "yes", "n", "no", "true", "false", "on", "off", "null", "~"}
# Characters JSON leaves raw but YAML treats as line breaks or non-printable.
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def dump(data: Any) -> str:
    lines: list[str] = []
    _node(data, 0, lines)
    return "\n".join(lines) + "\n"


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if _PLAIN.match(value) and value.lower() not in _RESERVED:
            return value
        return _UNSAFE.sub(
            lambda match: f"\\u{ord(match.group()):04x}", json.dumps(value, ensure_ascii=False)
        )
    if isinstance(value, dict) and not value:
        return "{}"
    if isinstance(value, list) and not value:
        return "[]"
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _node(node: Any, indent: int, lines: list[str]) -> None:
    pad = " " * indent
    if isinstance(node, dict) and node:
        for key, value in node.items():
            if isinstance(value, dict | list) and value:
                lines.append(f"{pad}{_scalar(str(key))}:")
                _node(value, indent + 2, lines)
            else:
                lines.append(f"{pad}{_scalar(str(key))}: {_scalar(value)}")
    elif isinstance(node, list) and node:
        for item in node:
            if isinstance(item, dict | list) and item:
                start = len(lines)
                _node(item, indent + 2, lines)
                lines[start] = f"{pad}- {lines[start][indent + 2 :]}"
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(f"{pad}{_scalar(node)}")
