"""Every read of a recording's bytes is audited: once per playback, with the ranges it read.

A player asks for many ranges while it seeks; one audit event each would drown the trail, and
auditing only reads from byte 0 let `Range: bytes=-N` read a whole track unseen. So the first
read of any range by a person of a track opens a playback (its audit event), and reads within
GAP of the previous one extend it, adding their ranges to the playback's row.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from portal.audit import services as audit
from portal.clock import clock
from portal.extensions import db
from portal.models import Playback, Recording, RecordingTrack

#: A pause longer than this ends a playback: the next read opens (and audits) a new one.
GAP = timedelta(minutes=5)

Span = tuple[int, int]  # first and last byte, inclusive


def merged(spans: list[Span]) -> list[Span]:
    """The spans sorted, overlapping and touching ones joined."""
    out: list[Span] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def note_read(recording: Recording, track: RecordingTrack, span: Span | None, *,
              size: int, download: bool) -> Playback:
    """Record that the asker was served `span` (None: headers only) of the track."""
    actor = audit.current_actor()
    now = clock().now()
    # Lock the track row: two range requests at once (players send them) open one playback.
    db.session.execute(select(RecordingTrack.id).where(RecordingTrack.id == track.id)
                       .with_for_update())
    playback = db.session.scalars(
        select(Playback).where(Playback.track_id == track.id,
                               Playback.actor_type == actor.type,
                               Playback.actor_id == actor.id,
                               Playback.download == download,
                               Playback.last_read_at > now - GAP)
        .order_by(Playback.last_read_at.desc()).limit(1)).first()
    if playback is None:
        event = audit.record(
            "recording.downloaded" if download else "recording.played",
            object_type="recording", object_id=recording.id, actor=actor,
            details={"track": track.name, "size": size,
                     "range": list(span) if span is not None else None})
        playback = Playback(track_id=track.id, actor_type=actor.type, actor_id=actor.id,
                            download=download, audit_seq=event.seq, opened_at=now, reads=0,
                            ranges="[]")
        db.session.add(playback)
    spans: list[Span] = [(s[0], s[1]) for s in json.loads(playback.ranges)]
    if span is not None:
        spans = merged([*spans, span])
    playback.ranges = json.dumps([list(s) for s in spans], separators=(",", ":"))
    playback.reads += 1
    playback.last_read_at = now
    return playback
