"""Flattened payload columns of one contract event type, derived from its model so that every
file of a type has the same columns whatever the events hold: nested objects become dotted
columns (``data.line.unit_price.amount``), integers and booleans keep their type, lists and
free-form maps stay JSON text, instants stay ISO-8601 text as in the payload. An optional
object that is absent or null gives nulls in all its columns."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .formats import Column, Kind


@dataclass(frozen=True, slots=True)
class Leaf:
    column: str
    path: tuple[str, ...]
    kind: Kind


def leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[Leaf]:
    found: list[Leaf] = []
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        annotation = _without_none(field.annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += leaves(annotation, path)
        else:
            found.append(Leaf("data." + ".".join(path), path, _kind(annotation)))
    return found


def _without_none(annotation: Any) -> Any:
    """The type under ``X | None`` and ``Annotated[X, …]``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            others = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(others) == 1:
                annotation = others[0]
                continue
        return annotation


def _kind(annotation: Any) -> Kind:
    if annotation is bool:
        return "bool"
    if annotation is int:
        return "int"
    if typing.get_origin(annotation) in (list, dict, tuple, set, frozenset) or annotation in (list, dict):
        return "json"
    return "string"


class Flattener:
    def __init__(self, model: type[BaseModel]) -> None:
        self._leaves = leaves(model)

    @property
    def columns(self) -> list[Column]:
        return [(leaf.column, leaf.kind) for leaf in self._leaves]

    def values(self, data: Mapping[str, Any]) -> Sequence[Any]:
        return [_at(data, leaf.path) for leaf in self._leaves]


def _at(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data
