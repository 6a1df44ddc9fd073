"""The shape of every client-to-server event (docs/signaling.md). Unknown keys are refused."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

_ID = validate.Range(min=1, max=2**31 - 1)


class Strict(Schema):
    class Meta:
        unknown = "raise"


class StrictBool(fields.Boolean):
    """true or false only, not "yes" or 1."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class StrictNumber(fields.Float):
    """A JSON number only, not "1.5" or true."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        return float(super()._deserialize(value, attr, data, **kwargs))


CHECK_STATES = ["pending", "ok", "warn", "fail"]


class Empty(Strict):
    pass


class Target(Strict):
    participant_id = fields.Integer(required=True, strict=True, validate=_ID)


class Join(Strict):
    resume = StrictBool(load_default=False)
    #: Policy notice: the version of the notice the participant acknowledged.
    notice = fields.String(load_default=None, validate=validate.Length(max=40))
    #: A hearing: the participant confirmed they will not record or photograph it.
    declaration = StrictBool(load_default=False)


class Description(Strict):
    type = fields.String(required=True,
                         validate=validate.OneOf(["offer", "answer", "pranswer", "rollback"]))
    sdp = fields.String(load_default="", validate=validate.Length(max=32 * 1024))


class Candidate(Strict):
    candidate = fields.String(required=True, validate=validate.Length(max=1024))
    sdpMid = fields.String(allow_none=True, load_default=None,  # noqa: N815 - WebRTC's name
                           validate=validate.Length(max=64))
    sdpMLineIndex = fields.Integer(allow_none=True, load_default=None,  # noqa: N815
                                   strict=True, validate=validate.Range(min=0, max=1024))
    usernameFragment = fields.String(allow_none=True, load_default=None,  # noqa: N815
                                     validate=validate.Length(max=256))


class Signal(Strict):
    to = fields.Integer(required=True, strict=True, validate=_ID)
    description = fields.Nested(Description)
    candidate = fields.Nested(Candidate, allow_none=True)

    @validates_schema
    def one_payload(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("description" in data) == ("candidate" in data):
            raise ValidationError("exactly one of description and candidate")


class MediaState(Strict):
    audio = StrictBool(required=True)
    video = StrictBool(required=True)


class Chat(Strict):
    text = fields.String(required=True, validate=validate.Length(min=1, max=2000))


# --- recording (docs/signaling.md, "Recording") ----------------------------------------------

_RECORDING_ID = validate.Regexp(r"^[0-9a-f]{32}$")
_VERSION = validate.Length(min=1, max=40)


class RecordStart(Strict):
    version = fields.String(required=True, validate=_VERSION)


class RecordAnswer(Strict):
    id = fields.String(required=True, validate=_RECORDING_ID)
    decision = fields.String(required=True,
                             validate=validate.OneOf(["granted", "declined", "withdrawn"]))
    version = fields.String(required=True, validate=_VERSION)


class RecordStop(Strict):
    id = fields.String(required=True, validate=_RECORDING_ID)


class RecordOffer(Strict):
    id = fields.String(required=True, validate=_RECORDING_ID)
    sdp = fields.String(required=True, validate=validate.Length(min=10, max=32 * 1024))


# --- hearings through Janus (docs/signaling.md, "Hearings") -----------------------------------

_SDP = validate.Length(min=10, max=32 * 1024)


class HearingSdp(Strict):
    """hearing:publish (an offer) and hearing:subscribe (the answer to hearing:offer)."""

    sdp = fields.String(required=True, validate=_SDP)


class HearingCandidate(Strict):
    pc = fields.String(required=True, validate=validate.OneOf(["publish", "subscribe"]))
    #: null: the browser has gathered all its candidates for that connection.
    candidate = fields.Nested(Candidate, required=True, allow_none=True)


class HearingLayer(Strict):
    participant_id = fields.Integer(required=True, strict=True, validate=_ID)
    substream = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=2))


# --- a hearing's court procedure (docs/signaling.md, "Court procedure") ----------------------

class Someone(Strict):
    """hearing:call, hearing:dismiss, hearing:remove, room:invite."""

    participant = fields.Integer(required=True, strict=True, validate=_ID)


class Mute(Strict):
    """One participant, or `all: true`; `lock`: they cannot unmute themselves."""

    participant = fields.Integer(strict=True, validate=_ID)
    all = StrictBool()
    lock = StrictBool(required=True)

    @validates_schema
    def one_target(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("participant" in data) == bool(data.get("all")):
            raise ValidationError("exactly one of participant and all: true")


class Screen(Strict):
    protected = fields.Integer(required=True, strict=True, validate=_ID)
    hidden_from = fields.Integer(required=True, strict=True, validate=_ID)
    on = StrictBool(required=True)


class RoomOpen(Strict):
    kind = fields.String(required=True, validate=validate.OneOf(["counsel", "bench"]))
    members = fields.List(fields.Integer(strict=True, validate=_ID), required=True,
                          validate=validate.Length(min=1, max=16))


class BenchMessage(Strict):
    body = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class DeviceCheck(Strict):
    """The device check's outcome on the page before joining (devices.js)."""

    media = fields.String(required=True, validate=validate.OneOf(CHECK_STATES))
    network = fields.String(required=True, validate=validate.OneOf(CHECK_STATES))


class Quality(Strict):
    """The browser's connection quality (quality.js: the worst of its connections)."""

    level = fields.String(required=True, validate=validate.OneOf(["good", "fair", "poor"]))
    rtt_ms = fields.Integer(required=True, strict=True, validate=validate.Range(min=0,
                                                                                max=60_000))
    loss = StrictNumber(required=True, allow_nan=False, validate=validate.Range(min=0, max=100))
    kbps = fields.Integer(required=True, strict=True, validate=validate.Range(min=0,
                                                                              max=10_000_000))
