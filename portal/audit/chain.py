"""The hash chain: how a row's digest is computed, appended and verified."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from portal.models.audit import GENESIS_DIGEST, AuditEvent, AuditHead


def canonical_details(details: dict[str, Any] | None) -> str:
    """Details as canonical JSON: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(details or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_of(event: AuditEvent) -> bytes:
    """Every column a reader relies on, in canonical JSON, as the bytes that get hashed."""
    content = {
        "seq": event.seq,
        "created_at": event.created_at.isoformat(),
        "actor_type": event.actor_type,
        "actor_id": event.actor_id,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "ip": event.ip,
        "details": event.details,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode("utf-8")


def digest_of(prev_digest: str, event: AuditEvent) -> str:
    """SHA-256 over the previous digest and this row's canonical content."""
    return hashlib.sha256(prev_digest.encode("ascii") + content_of(event)).hexdigest()


@dataclass(frozen=True)
class Verdict:
    """The outcome of a chain check; bad_seq is the first row that fails, if any."""

    ok: bool
    checked: int
    head_digest: str
    bad_seq: int | None = None
    reason: str = ""


def verify_rows(rows: Iterable[AuditEvent], head: AuditHead | None) -> Verdict:
    """Walk the rows in sequence order; report the first altered, missing or relinked row."""
    prev = GENESIS_DIGEST
    expected = 1
    checked = 0
    for row in rows:
        if row.seq != expected:
            return Verdict(False, checked, prev, row.seq,
                           f"row {row.seq}: rows {expected}..{row.seq - 1} are missing")
        if row.prev_digest != prev:
            return Verdict(False, checked, prev, row.seq,
                           f"row {row.seq}: link to the previous row is broken")
        if digest_of(prev, row) != row.digest:
            return Verdict(False, checked, prev, row.seq,
                           f"row {row.seq}: content does not match its digest (altered)")
        prev = row.digest
        expected += 1
        checked += 1
    head_seq = head.seq if head else 0
    head_digest = head.digest if head else GENESIS_DIGEST
    if head_seq != checked or head_digest != prev:
        return Verdict(False, checked, prev, checked + 1,
                       f"chain ends at row {checked} but the head says {head_seq}: "
                       "rows at the end were removed or the head was altered")
    return Verdict(True, checked, prev)
