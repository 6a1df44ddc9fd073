"""The loss ledger on its own (loss.py): sequence gaps, late and repeated packets, windows."""

from __future__ import annotations

from portal.recording.loss import LossLedger, describe, lossless


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def ledger(clock: Clock) -> LossLedger:
    return LossLedger(window=5.0, late_limit=1.0, clock=clock)


def feed(book: LossLedger, clock: Clock, numbers: list[int], step: float = 0.01) -> None:
    for number in numbers:
        book.rtp("video", 7, number)
        clock.now += step


def test_a_gap_is_lost_only_once_the_late_limit_passed() -> None:
    clock = Clock()
    book = ledger(clock)
    feed(book, clock, [1, 2, 5, 6])
    assert book.total() == {}  # 3 and 4 may still come
    clock.now += 1.0
    book.expire()
    assert book.total() == {"video": {"lost": 2}}
    assert book.news() == 2 and book.news() == 0


def test_late_and_repeated_packets_are_not_lost() -> None:
    clock = Clock()
    book = ledger(clock)
    feed(book, clock, [10, 12, 11, 12, 13])
    book.close()
    assert book.total() == {"video": {"late": 1, "duplicate": 1}}
    assert book.to_dict()["complete"] is True


def test_sequence_numbers_wrap_around() -> None:
    clock = Clock()
    book = ledger(clock)
    feed(book, clock, [65534, 65535, 0, 2, 1, 3])
    book.close()
    assert book.total() == {"video": {"late": 1}}


def test_a_gap_counts_in_the_window_where_it_opened() -> None:
    clock = Clock()
    book = ledger(clock)
    feed(book, clock, [1])
    clock.now += 6  # second window
    feed(book, clock, [2, 4])
    clock.now += 20
    book.add("socket", "socket_drops", 3)
    book.close()
    said = book.to_dict()
    assert said["complete"] is False
    assert said["total"] == {"socket": {"socket_drops": 3}, "video": {"lost": 1}}
    first, second = said["windows"]
    assert first["video"] == {"lost": 1} and first["from"].endswith("+00:00")
    assert second["socket"] == {"socket_drops": 3}
    assert "LOSS: socket: 3 socket drops; video: 1 lost between" in describe(said)


def test_a_pause_is_not_loss() -> None:
    clock = Clock()
    book = ledger(clock)
    feed(book, clock, [1, 2])
    book.restart()
    feed(book, clock, [900, 901])
    book.close()
    assert book.to_dict()["complete"] is True


def test_a_huge_jump_is_counted_at_once() -> None:
    clock = Clock()
    book = ledger(clock)
    feed(book, clock, [1, 5000])
    assert book.total() == {"video": {"lost": 4998}}


def test_refused_packets_are_loss_but_late_ones_are_not() -> None:
    assert lossless({"video": {"late": 3, "duplicate": 1}})
    assert not lossless({"audio": {"refused": 1}})
    assert describe(None).startswith("not accounted")
    assert describe({"complete": True}) == "complete: nothing lost"
