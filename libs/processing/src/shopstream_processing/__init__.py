"""Projection and policy runners over a service's own event store.

Backends for read models are imported from their modules (``shopstream_processing.sqlite``,
``shopstream_processing.postgres``) so a service loads only the driver it uses.
"""

from .checksum import Checksum
from .policies import POLICY_NAMESPACE, CommandHandler, IssuedCommand, Policy, PolicyRunner, command_id
from .projections import (
    CheckpointMoved,
    Projection,
    ProjectionRunner,
    RawProjection,
    RebuildResult,
    Table,
    TableNames,
)
from .readmodel import ReadModelDb, Row, RowCountMismatch, Statement
from .supervision import Backoff, EventProcessingFailed

__all__ = [
    "POLICY_NAMESPACE",
    "Backoff",
    "CheckpointMoved",
    "Checksum",
    "CommandHandler",
    "EventProcessingFailed",
    "IssuedCommand",
    "Policy",
    "PolicyRunner",
    "Projection",
    "ProjectionRunner",
    "RawProjection",
    "ReadModelDb",
    "RebuildResult",
    "Row",
    "RowCountMismatch",
    "Statement",
    "Table",
    "TableNames",
    "command_id",
]
