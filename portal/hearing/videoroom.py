"""What the portal asks Janus's VideoRoom plugin, and what it makes of the answers.

Janus room id = appointment id; feed id (publisher id) = participant id; display = the id as
text (no names go to Janus). The recorder (portal/recording) reads the same conventions.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from portal.hearing.config import admin_key, room_secret

#: VideoRoom's error codes that matter here.
ROOM_EXISTS, NO_SUCH_FEED, NOT_PUBLISHED, ID_EXISTS = 427, 428, 435, 436
#: Enough publishers for the largest hearing (15) and one more.
MOST_PUBLISHERS = 16


def create(app: Flask, room: int) -> dict[str, Any]:
    """The hearing's room: only the portal may make it (admin_key), kick, moderate or
    destroy in it (secret); nobody may record into Janus's plaintext files (lock_record, and
    lock_rtp_forward in the plugin's configuration); VP8 (simulcast) and Opus; audio levels
    name the active speaker; joins are announced."""
    return {"request": "create", "room": room, "permanent": False, "is_private": True,
            "admin_key": admin_key(app), "secret": room_secret(app, room),
            "publishers": MOST_PUBLISHERS, "videocodec": "vp8", "audiocodec": "opus",
            "audiolevel_event": True, "notify_joining": True, "lock_record": True,
            "record": False}


def destroy(app: Flask, room: int) -> dict[str, Any]:
    return {"request": "destroy", "room": room, "permanent": False,
            "secret": room_secret(app, room)}


def kick(app: Flask, room: int, participant_id: int) -> dict[str, Any]:
    return {"request": "kick", "room": room, "id": participant_id,
            "secret": room_secret(app, room)}


def list_forwarders(app: Flask, room: int) -> dict[str, Any]:
    return {"request": "listforwarders", "room": room, "secret": room_secret(app, room)}


def stop_forward(app: Flask, room: int, participant_id: int, stream_id: int) -> dict[str, Any]:
    """Stop one RTP forward (the recorder's; locked to the admin key)."""
    return {"request": "stop_rtp_forward", "room": room, "publisher_id": participant_id,
            "stream_id": stream_id, "secret": room_secret(app, room),
            "admin_key": admin_key(app)}


def forwarders(listed: dict[str, Any]) -> list[tuple[int, int, str | None]]:
    """(publisher, stream id, "audio"/"video"/None) of each forward a listforwarders answer
    lists."""
    return [(int(p["publisher_id"]), int(f["stream_id"]), f.get("type"))
            for p in listed.get("publishers") or [] for f in p.get("forwarders") or []
            if isinstance(p.get("publisher_id"), int) and isinstance(f.get("stream_id"), int)]


def join_publisher(room: int, participant_id: int) -> dict[str, Any]:
    return {"request": "join", "ptype": "publisher", "room": room, "id": participant_id,
            "display": str(participant_id)}


def join_subscriber(room: int, streams: list[dict[str, Any]]) -> dict[str, Any]:
    """A subscription of these streams: `{feed}` is all of a feed's media, `{feed, mid}` one
    of its streams (the publisher's mid)."""
    return {"request": "join", "ptype": "subscriber", "room": room, "streams": streams}


def update(add: list[dict[str, Any]], remove: list[dict[str, Any]]) -> dict[str, Any]:
    """Streams into and out of a subscription: `{feed}` or `{feed, mid}` to add; `{feed}`
    or `{sub_mid}` (the subscription's own m-line) to remove."""
    body: dict[str, Any] = {"request": "update"}
    if add:
        body["subscribe"] = add
    if remove:
        body["unsubscribe"] = remove
    return body


def published_streams(data: dict[str, Any]) -> dict[int, dict[str, str]]:
    """From a publisher's `joined` answer or a room event listing `publishers`: each feed's
    published media and their mids (kind -> the publisher's mid)."""
    found: dict[int, dict[str, str]] = {}
    for publisher in data.get("publishers") or []:
        if not isinstance(publisher, dict) or not isinstance(publisher.get("id"), int):
            continue
        found[publisher["id"]] = {
            str(s["type"]): str(s["mid"]) for s in publisher.get("streams") or []
            if isinstance(s, dict) and s.get("type") in ("audio", "video") and "mid" in s
            and not s.get("disabled")}
    return found


def gone_feed(data: dict[str, Any]) -> int | None:
    """The feed a room event says stopped publishing or left."""
    for key in ("unpublished", "leaving", "kicked"):
        if isinstance(data.get(key), int):
            return int(data[key])
    return None


def publishing(participants: dict[str, Any]) -> set[int]:
    """From `listparticipants`: the feeds publishing now."""
    return {int(p["id"]) for p in participants.get("participants", [])
            if p.get("publisher") and isinstance(p.get("id"), int)}


def streams(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A subscription as Janus describes it (`attached`, `updated`): its active audio and
    video m-lines as `hearing:offer` lists them; None when the answer describes nothing
    (`updating`: the offer comes later, as an event)."""
    found = data.get("streams")
    if not isinstance(found, list):
        return None
    return [{"mid": str(s["mid"]), "participant_id": int(s["feed_id"]), "kind": str(s["type"])}
            for s in found if isinstance(s, dict) and s.get("active", True)
            and "feed_id" in s and "mid" in s and s.get("type") in ("audio", "video")]


def candidate(given: dict[str, Any] | None) -> dict[str, Any] | None:
    """A browser's candidate as Janus takes it (None: gathering is over)."""
    if given is None:
        return None
    return {k: v for k, v in given.items()
            if k in ("candidate", "sdpMid", "sdpMLineIndex") and v is not None}


def changes_feeds(data: dict[str, Any]) -> bool:
    """A room event on a publisher handle after which the subscriptions may differ."""
    return data.get("videoroom") == "event" and any(
        key in data for key in ("publishers", "unpublished", "leaving", "kicked"))
