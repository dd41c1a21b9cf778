"""Value objects shared by commands and deciders: an agreement and its versions.

``Agreement`` is the agreement aggregate's state. It lives here rather than in ``domain.py``
because the order-allocation command carries it (the agreement is another aggregate, loaded by
the handler), and commands must not depend on the deciders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

FULL_SHARE_BPS = 10_000


@dataclass(frozen=True, slots=True)
class Share:
    """One party's share of a commission, in basis points of it."""

    influencer_id: str
    share_bps: int


@dataclass(frozen=True, slots=True)
class AgreementVersion:
    version: int
    rate_bps: int
    holdback_days: int
    shares: tuple[Share, ...]
    """As signed: empty means the agreement's influencer alone."""
    effective_from: datetime
    signed_by: str
    signed_at: datetime


@dataclass(frozen=True, slots=True)
class Agreement:
    agreement_id: str
    brand_id: str
    influencer_id: str
    versions: tuple[AgreementVersion, ...]
    """In signing order; ``effective_from`` strictly increases with the version."""

    @property
    def current(self) -> AgreementVersion:
        return self.versions[-1]

    def version_in_force(self, at: datetime) -> AgreementVersion | None:
        """The version whose terms apply to a sale at ``at``: the latest one effective at or
        before it; None when the sale predates the first version."""
        in_force = None
        for version in self.versions:
            if version.effective_from <= at:
                in_force = version
        return in_force

    def parties(self, version: AgreementVersion) -> tuple[Share, ...]:
        """Who shares the commission under ``version``: its co-host shares, or the agreement's
        influencer alone."""
        return version.shares or (Share(self.influencer_id, FULL_SHARE_BPS),)
