"""The services' projections, by name: exactly the ones each service runs, taken from its own
composition root (``shopstream_<service>.bootstrap.build``), so an analyst rebuilds or time-travels
the very code that serves the read API."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from functools import cache

from shopstream_processing import Projection
from shopstream_service.runtime import ServiceSpec
from shopstream_service.settings import ServiceSettings

from .sources import SERVICES


class UnknownProjection(ValueError):
    """A service or projection name that does not exist: the message lists the valid ones."""


@cache
def projections_of(service: str) -> Sequence[Projection]:
    if service not in SERVICES:
        raise UnknownProjection(f"unknown service {service!r}: choose from {', '.join(SERVICES)}")
    spec: ServiceSpec = importlib.import_module(f"shopstream_{service}.bootstrap").build(ServiceSettings())
    return tuple(spec.projections)


def select(service: str, names: Iterable[str] | None = None) -> list[Projection]:
    """The named projections of ``service`` in the order asked (all of them, in the service's own
    order, when ``names`` is None or empty)."""
    known = {projection.name: projection for projection in projections_of(service)}
    chosen = list(names or known)
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise UnknownProjection(
            f"{service} has no projection {', '.join(map(repr, unknown))}: choose from {', '.join(known)}"
        )
    return [known[name] for name in dict.fromkeys(chosen)]
