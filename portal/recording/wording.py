"""What people are told before they are recorded: the consent prompt and the hearing notice.

The text is built from settings (purpose, retention) in the viewer's language. Its version is
a digest of the exact text, so a changed setting or translation is a new version, and each
Consent row stores the text that was shown.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from flask import current_app
from flask_babel import gettext as _

Kind = Literal["consent", "notice"]


@dataclass(frozen=True)
class Wording:
    kind: Kind
    version: str
    what: str
    why: str
    who: str
    how_long: str
    withdraw: str

    @property
    def text(self) -> str:
        return "\n".join((self.what, self.why, self.who, self.how_long, self.withdraw))

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "version": self.version, "what": self.what, "why": self.why,
                "who": self.who, "how_long": self.how_long, "withdraw": self.withdraw}


def wording(kind: Kind) -> Wording:
    """The wording in the current request's language."""
    config = current_app.config
    days = int(config["RECORDING_RETENTION_DAYS"])
    purpose = config["RECORDING_PURPOSE"] or _(
        "So that the conversation can be documented and checked later.")
    if kind == "consent":
        what = _("The host asks to record this call: the sound and picture of everyone in it.")
        withdraw = _("You may say no. You may withdraw your consent at any moment; the "
                     "recording then stops at once.")
    else:
        what = _("This hearing is recorded by order of the court: the sound and picture of "
                 "everyone in it.")
        withdraw = _("By joining you acknowledge this notice.")
    who = _("Only the host of this appointment and the portal's administrators can open the "
            "recording. It is stored encrypted, and every playback is logged.")
    how_long = _("It is kept for %(days)d days and then deleted.", days=days)
    parts = (what, _("Why: %(purpose)s", purpose=purpose), who, how_long, withdraw)
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return Wording(kind, f"{kind}-{digest}", parts[0], parts[1], who, how_long, withdraw)
