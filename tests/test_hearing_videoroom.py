"""What the portal makes of VideoRoom's answers (portal/hearing/videoroom.py), and the
hearing's one-thread-at-a-time queue (portal/hearing/serial.py). The same requests against a
real Janus: e2e/test_hearing_live.py."""

from __future__ import annotations

import threading

from portal.hearing import videoroom
from portal.hearing.seats import Seat
from portal.hearing.serial import Serial

#: An `updated` answer as Janus 1.1.2 gives it: feed 7 left (its m-lines inactive), 9 came.
UPDATED = {"videoroom": "updated", "room": 3, "streams": [
    {"type": "video", "active": False, "mindex": 0, "mid": "0", "ready": True, "send": True},
    {"type": "audio", "active": False, "mindex": 1, "mid": "1", "ready": True, "send": True},
    {"type": "video", "active": True, "mindex": 2, "mid": "2", "ready": False, "send": True,
     "feed_id": 9, "feed_display": "9", "feed_mid": "0", "codec": "vp8"},
    {"type": "audio", "active": True, "mindex": 3, "mid": "3", "ready": False, "send": True,
     "feed_id": 9, "feed_display": "9", "feed_mid": "1", "codec": "opus"},
    {"type": "data", "active": True, "mindex": 4, "mid": "4", "sources": 1},
]}


def test_a_subscription_is_described_by_its_active_media_lines() -> None:
    streams = videoroom.streams(UPDATED)
    assert streams == [{"mid": "2", "participant_id": 9, "kind": "video"},
                       {"mid": "3", "participant_id": 9, "kind": "audio"}]
    seat = Seat(5, "sid", "en")
    seat.receives(streams)
    assert (seat.feeds, seat.videos) == ({9}, {9: "2"})
    assert seat.media == {9: {"audio", "video"}}
    assert seat.mids == {(9, "video"): "2", (9, "audio"): "3"}
    assert videoroom.streams({"videoroom": "updating", "room": 3}) is None
    assert videoroom.streams({"videoroom": "updated", "streams": ["junk", {"mid": "0"}]}) == []


def test_publishing_feeds_come_from_listparticipants() -> None:
    answer = {"videoroom": "participants", "room": 3, "participants": [
        {"id": 5, "display": "5", "publisher": True, "talking": False},
        {"id": 6, "display": "6", "publisher": False},
        {"id": 9007199254740991, "display": "recorder", "publisher": False},
        {"id": "7", "publisher": True}]}
    assert videoroom.publishing(answer) == {5}
    assert videoroom.publishing({}) == set()


def test_requests() -> None:
    assert videoroom.update([{"feed": 4}], []) == {"request": "update",
                                                   "subscribe": [{"feed": 4}]}
    assert videoroom.update([{"feed": 4, "mid": "1"}], [{"feed": 5}, {"sub_mid": "3"}]) == {
        "request": "update", "subscribe": [{"feed": 4, "mid": "1"}],
        "unsubscribe": [{"feed": 5}, {"sub_mid": "3"}]}
    assert videoroom.join_publisher(3, 5) == {"request": "join", "ptype": "publisher",
                                              "room": 3, "id": 5, "display": "5"}
    assert videoroom.candidate(None) is None
    assert videoroom.candidate({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host",
                                "sdpMid": "0", "sdpMLineIndex": None,
                                "usernameFragment": "ab"}) == {
        "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}
    assert videoroom.changes_feeds({"videoroom": "event", "room": 3, "unpublished": 7})
    assert not videoroom.changes_feeds({"videoroom": "event", "room": 3, "joining": {"id": 7}})
    assert not videoroom.changes_feeds({"videoroom": "talking", "room": 3, "id": 7})


def test_published_streams_and_gone_feeds_come_from_room_events() -> None:
    joined = {"videoroom": "joined", "room": 3, "id": 5, "publishers": [
        {"id": 9, "display": "9", "streams": [
            {"type": "audio", "mindex": 0, "mid": "0", "codec": "opus"},
            {"type": "video", "mindex": 1, "mid": "1", "codec": "vp8", "simulcast": True},
            {"type": "data", "mindex": 2, "mid": "2"}]},
        {"id": 11, "streams": [{"type": "video", "mid": "0", "disabled": True}]},
        {"id": "junk"}, "junk"]}
    assert videoroom.published_streams(joined) == {9: {"audio": "0", "video": "1"}, 11: {}}
    assert videoroom.published_streams({"videoroom": "event"}) == {}
    assert videoroom.gone_feed({"videoroom": "event", "unpublished": 9}) == 9
    assert videoroom.gone_feed({"videoroom": "event", "leaving": 9}) == 9
    assert videoroom.gone_feed({"videoroom": "event", "unpublished": "ok"}) is None


def test_serial_runs_tasks_in_order_one_at_a_time_and_survives_a_failing_one() -> None:
    serial = Serial("test")
    ran: list[int] = []
    running = threading.Lock()
    done = threading.Event()

    def task(i: int) -> None:
        assert running.acquire(blocking=False), "two tasks at once"
        try:
            if i == 3:
                raise RuntimeError("a task that fails")
            ran.append(i)
            if i == 49:
                done.set()
        finally:
            running.release()

    for i in range(50):
        serial.submit(lambda i=i: task(i))
    assert done.wait(5)
    assert ran == [i for i in range(50) if i != 3]
    assert serial.idle
