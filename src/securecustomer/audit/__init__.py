"""A tamper-evident audit trail: one decorator, a keyed hash chain, signed checkpoints.

Example:
    ```python
    import secrets
    from securecustomer.audit import AuditTrail, MemoryAuditSink, actor, audited, default_trail

    trail = AuditTrail(MemoryAuditSink(), key=secrets.token_bytes(32))
    default_trail.bind(trail)

    @audited("read", resource="customer", resource_id="customer_id", subject="customer_id")
    def show_customer(customer_id: int) -> dict: ...

    with actor("user-7", request_id="req-1"):
        show_customer(42)
    assert trail.verify().ok
    ```
"""

from securecustomer.audit._chain import Checkpoint, Record, VerificationReport
from securecustomer.audit._context import (
    Actor,
    actor,
    current_actor,
    propagate,
    propagate_to_threads,
)
from securecustomer.audit._decorator import TrailSlot, audited, default_trail
from securecustomer.audit._event import SCHEMA_VERSION, AuditEvent
from securecustomer.audit._jsonl import JsonlAuditSink
from securecustomer.audit._monitor import (
    AccessMonitor,
    Alert,
    BulkExportRule,
    DenialBurstRule,
    FirstAccessRule,
    MonitorRule,
    OutsideHoursRule,
    TotalVolumeRule,
    VolumeRule,
    normalize_actor,
)
from securecustomer.audit._redact import make_redact_pii, redact_pii
from securecustomer.audit._sql import SqlAuditSink, audit_table
from securecustomer.audit._structlog import StructlogAuditSink, records_from_lines
from securecustomer.audit._trail import AuditSink, AuditTrail, Linker, MemoryAuditSink

__all__ = [
    "AccessMonitor",
    "Actor",
    "Alert",
    "AuditEvent",
    "AuditSink",
    "AuditTrail",
    "BulkExportRule",
    "Checkpoint",
    "DenialBurstRule",
    "FirstAccessRule",
    "JsonlAuditSink",
    "Linker",
    "MemoryAuditSink",
    "MonitorRule",
    "OutsideHoursRule",
    "Record",
    "SCHEMA_VERSION",
    "SqlAuditSink",
    "StructlogAuditSink",
    "TotalVolumeRule",
    "TrailSlot",
    "VerificationReport",
    "VolumeRule",
    "actor",
    "audit_table",
    "audited",
    "current_actor",
    "default_trail",
    "make_redact_pii",
    "normalize_actor",
    "propagate",
    "propagate_to_threads",
    "records_from_lines",
    "redact_pii",
]
