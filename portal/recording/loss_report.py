"""What the recordings page says of a recording's missing media, in the viewer's language.

From each track's loss counts (loss.py, kept in the track's details and the signed manifest):
"complete" is said only when every track counted its loss and lost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import format_datetime, format_time, ngettext
from flask_babel import gettext as _

from portal.models import Recording, RecordingStatus
from portal.models.recording import STORED
from portal.recording import archive
from portal.recording.loss import LOSSES, lossless

MAX_WINDOWS = 6  # windows listed one by one; more are summed up as a span


@dataclass
class TrackLoss:
    name: str  # the participant's display name
    what: str  # "video: 12 packets lost; ..." in the viewer's language
    when: list[str]  # the windows it happened in, or one span


@dataclass
class LossReport:
    accounted: bool  # every track with media counted its loss
    complete: bool  # ... and none lost anything, and every track has media
    tracks: list[TrackLoss] = field(default_factory=list)
    empty: set[int] = field(default_factory=set)  # ids of stopped tracks with no media stored

    def label(self, recording: Recording) -> str | None:
        """The status to show instead of "complete", or None to keep the usual one."""
        if recording.status is not RecordingStatus.COMPLETE or self.complete:
            return None
        if not self.accounted:
            return _("stored; not checked for missing media (recorded before it was counted)")
        return _("media missing: parts of this recording were not received")


def report(recording: Recording) -> LossReport:
    tracks = [t for t in recording.tracks if t.mode != "failed"]
    # Stopped before anyone's media reached the recorder (it stopped at once, or the link never
    # came up): nothing to play, and the recording must not pass for complete.
    details = {t.id: archive.track_details(t) for t in tracks}
    empty = {t.id for t in tracks if recording.status in STORED and "file" not in details[t.id]}
    counted = [(t, details[t.id].get("loss")) for t in tracks if t.id not in empty]
    accounted = all(loss is not None and loss.get("accounted", True) for _t, loss in counted)
    result = LossReport(accounted, accounted and not empty and all(
        loss and loss.get("complete") for _t, loss in counted), empty=empty)
    for track in tracks:
        if track.id in empty:
            result.tracks.append(TrackLoss(track.participant.display_name, _(
                "nothing was received: the recording stopped before this person's media "
                "reached the recorder"), []))
    for track, loss in counted:
        if loss and not loss.get("complete") and loss.get("accounted", True):
            result.tracks.append(TrackLoss(track.participant.display_name,
                                           _what(loss.get("total", {})),
                                           _when(loss.get("windows", []))))
    return result


def _what(total: dict[str, dict[str, int]]) -> str:
    media = {"audio": _("audio"), "video": _("video"), "socket": _("connection")}
    parts = []
    for medium, counters in sorted(total.items()):
        said = [_count(c, counters[c]) for c in LOSSES if counters.get(c)]
        if said:
            parts.append(f"{media.get(medium, medium)}: {', '.join(said)}")
    return "; ".join(parts)


def _count(counter: str, n: int) -> str:
    if counter == "lost":
        return ngettext("%(num)d packet never arrived", "%(num)d packets never arrived", n)
    if counter == "refused":
        return ngettext("%(num)d packet could not be stored",
                        "%(num)d packets could not be stored", n)
    if counter == "unread_at_stop":
        return ngettext("%(num)d byte not yet read when it stopped",
                        "%(num)d bytes not yet read when it stopped", n)
    return ngettext("%(num)d packet dropped by the overloaded server",
                    "%(num)d packets dropped by the overloaded server", n)


def _when(windows: list[dict[str, Any]]) -> list[str]:
    lossy = [w for w in windows
             if not lossless({k: v for k, v in w.items() if k not in ("from", "to")})]
    if not lossy:
        return []
    spans = [(datetime.fromisoformat(w["from"]), datetime.fromisoformat(w["to"]))
             for w in lossy]
    if len(spans) > MAX_WINDOWS:
        spans = [(spans[0][0], spans[-1][1])]
    # Seconds matter here: a window is a few seconds long. The viewer's zone, as elsewhere.
    return [_("%(start)s to %(end)s", start=format_datetime(a, "medium"),
              end=format_time(b, "medium")) for a, b in spans]
