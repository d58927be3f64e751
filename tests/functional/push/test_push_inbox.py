"""PushInbox under interleaving: a key pushed at any moment is taken by some open(), each
flip names a job no other flip names, and a worker that repeats or abandons its steps loses
nothing."""

from __future__ import annotations

import itertools
import threading

import pytest
from mls_sync.dal.push_inbox import PushInboxRepo

from tests.functional.push.conftest import PushWorld

C = "c-inbox"
NOW = "2026-11-28T17:05:12.000000Z"


@pytest.fixture
def inbox(push: PushWorld) -> PushInboxRepo:
    return push.inbox_repo()


def test_first_push_sends_the_job_later_pushes_do_not(inbox: PushInboxRepo) -> None:
    first = inbox.add(C, ["K1"], cap=10, now=NOW)
    second = inbox.add(C, ["K2"], cap=10, now=NOW)
    assert (first.saturated, first.send_job, first.ticket) == (False, True, 1)
    assert (second.saturated, second.send_job) == (False, False)
    assert inbox.peek(C).keys == ["K1", "K2"]


def test_a_push_after_open_is_not_lost_and_sends_a_new_job(inbox: PushInboxRepo) -> None:
    # Given a job queued for K1 and a worker that has opened the inbox
    inbox.add(C, ["K1"], cap=10, now=NOW)
    batch = inbox.open(C)
    assert (batch.keys, batch.take) == (["K1"], 1)
    # When K2 is pushed while the worker applies K1
    late = inbox.add(C, ["K2"], cap=10, now=NOW)
    # Then that push sends the next job, under another name (a different deduplication id)
    assert (late.send_job, late.ticket) == (True, 2)
    # And the worker's done removes only what it took: K2 waits for the next open
    inbox.done(C, batch.keys, opened=batch)
    assert inbox.open(C).keys == ["K2"]


def test_a_key_pushed_again_while_a_worker_reads_it_stays_for_the_next_take(
    inbox: PushInboxRepo,
) -> None:
    # Given a worker that took K1 (and K2) and may have read K1 from the MLS already
    inbox.add(C, ["K1", "K2"], cap=10, now=NOW)
    batch = inbox.open(C)
    # When the MLS pushes K1 again (a newer change) before the worker is done
    again = inbox.add(C, ["K1"], cap=10, now=NOW)
    inbox.done(C, batch.keys, opened=batch)
    # Then that push sent a job, and K1 waits for it; K2 is done
    assert again.send_job is True
    assert inbox.open(C).keys == ["K1"]


def test_done_of_a_worker_that_took_the_again_keys_removes_them(inbox: PushInboxRepo) -> None:
    inbox.add(C, ["K1"], cap=10, now=NOW)
    first = inbox.open(C)
    inbox.add(C, ["K1"], cap=10, now=NOW)  # pushed again while the first worker reads
    inbox.done(C, first.keys, opened=first)  # leaves K1
    second = inbox.open(C)  # the next take clears the mark
    inbox.done(C, second.keys, opened=second)
    assert inbox.peek(C).keys == []


def test_duplicate_open_and_done_lose_nothing(inbox: PushInboxRepo) -> None:
    inbox.add(C, ["K1", "K2"], cap=10, now=NOW)
    first = inbox.open(C)
    second = inbox.open(C)  # a redelivered job opens again before the first is done
    assert first.keys == second.keys == ["K1", "K2"]
    assert second.take == (first.take or 0) + 1
    inbox.done(C, first.keys, opened=first)
    inbox.done(C, second.keys, opened=second)  # a second done of the same keys: nothing
    assert inbox.peek(C).keys == []


def test_a_crash_between_open_and_done_leaves_the_keys_for_the_next_open(
    inbox: PushInboxRepo,
) -> None:
    inbox.add(C, ["K1"], cap=10, now=NOW)
    inbox.open(C)  # the worker dies here: no done
    redelivered = inbox.open(C)
    assert redelivered.keys == ["K1"]


def test_requeue_flips_once_and_a_later_push_sends_nothing(inbox: PushInboxRepo) -> None:
    inbox.add(C, ["K1", "K2"], cap=10, now=NOW)
    batch = inbox.open(C)
    inbox.done(C, ["K1"], opened=batch)  # out of time after K1
    ticket = inbox.requeue(C, now=NOW)
    assert ticket is not None
    assert ticket.number == 2  # after push 1: a name of its own
    assert batch.take == 1
    assert inbox.requeue(C, now=NOW) is None  # already queued
    assert inbox.add(C, ["K3"], cap=10, now=NOW).send_job is False


def test_requeue_with_nothing_left_sends_nothing(inbox: PushInboxRepo) -> None:
    inbox.add(C, ["K1"], cap=10, now=NOW)
    batch = inbox.open(C)
    inbox.done(C, batch.keys, opened=batch)
    assert inbox.requeue(C, now=NOW) is None


def test_unqueue_only_while_no_worker_opened_since(inbox: PushInboxRepo) -> None:
    added = inbox.add(C, ["K1"], cap=10, now=NOW)
    assert inbox.unqueue(C, added.ticket) is True
    retry = inbox.add(C, ["K1"], cap=10, now=NOW)
    assert retry.send_job is True  # the producer's retry sends the job
    inbox.open(C)
    assert inbox.unqueue(C, retry.ticket) is False  # a worker took the keys meanwhile


def test_a_full_inbox_refuses_and_keeps_what_it_holds(inbox: PushInboxRepo) -> None:
    assert not inbox.add(C, ["K1", "K2"], cap=3, now=NOW).saturated
    assert inbox.add(C, ["K3", "K4"], cap=3, now=NOW).saturated  # would hold 4
    assert not inbox.add(C, ["K3"], cap=3, now=NOW).saturated
    assert inbox.add(C, ["K4"], cap=3, now=NOW).saturated
    assert inbox.add(C, ["K9"] * 1, cap=0, now=NOW).saturated
    assert inbox.peek(C).keys == ["K1", "K2", "K3"]
    taken = inbox.open(C)
    inbox.done(C, taken.keys, opened=taken)
    assert not inbox.add(C, ["K4"], cap=3, now=NOW).saturated


def test_open_and_done_on_a_connection_without_inbox_create_nothing(
    inbox: PushInboxRepo,
) -> None:
    batch = inbox.open("c-never")
    assert (batch.keys, batch.take) == ([], None)
    inbox.done("c-never", ["K1"], opened=batch)
    assert inbox.requeue("c-never", now=NOW) is None
    assert inbox.peek("c-never").take is None


def test_add_refuses_an_empty_push(inbox: PushInboxRepo) -> None:
    with pytest.raises(ValueError, match="at least one key"):
        inbox.add(C, [], cap=10, now=NOW)


@pytest.mark.usefixtures("atomic_writes")
def test_concurrent_pushes_and_a_worker_leave_no_push_unread(inbox: PushInboxRepo) -> None:
    # Given 6 producers pushing 40 times each, from a pool of 25 keys (so keys are pushed
    # again while a worker holds them), and a worker taking and finishing in a loop
    clock = itertools.count()  # one order for every event, across threads
    lock = threading.Lock()
    last_sent: dict[str, int] = {}  # key -> when its latest push was sent
    opens: list[tuple[int, list[str]]] = []  # (when the take started, what it took)
    jobs: list[int] = []  # the ticket of every job a push had to send
    stop = threading.Event()

    def producer(p: int) -> None:
        for n in range(40):
            key = f"K{(p * 7 + n) % 25}"
            with lock:
                last_sent[key] = next(clock)
            outcome = inbox.add(C, [key], cap=10_000, now=NOW)
            assert not outcome.saturated
            if outcome.send_job:
                with lock:
                    jobs.append(outcome.ticket)

    def take() -> None:
        # The take is numbered and made under the lock, so a push numbered after it was
        # sent after the take happened (and one numbered before, before it).
        with lock:
            started = next(clock)
            batch = inbox.open(C)
        opens.append((started, batch.keys))
        if batch.take is not None:
            inbox.done(C, batch.keys, opened=batch)

    def worker() -> None:
        while not stop.is_set():
            take()

    threads = [threading.Thread(target=producer, args=(p,)) for p in range(6)]
    runner = threading.Thread(target=worker)
    runner.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    runner.join()
    # When the job of the last flip runs
    take()
    # Then every key's latest push was followed by a take that started after it was sent
    # and took the key: the worker read the MLS after that change
    for key, sent in last_sent.items():
        assert any(started > sent and key in keys for started, keys in opens), key
    # And every job has a name of its own, at most one per take plus the last flip's
    assert len(jobs) == len(set(jobs))
    assert 1 <= len(jobs) <= len(opens) + 1
    assert inbox.peek(C).keys == []


def test_a_job_owed_and_never_sent_is_sent_by_a_later_push(inbox: PushInboxRepo) -> None:
    # Given a push whose flip went in but whose job was never sent (its answer was lost
    # and the retried write found the flag already taken)
    first = inbox.add(C, ["K1"], cap=10, now="2026-11-28T17:00:00.000000Z")
    assert first.send_job is True  # ...and then the push died
    # When pushes come later: one within the grace period sends nothing
    soon = inbox.add(C, ["K2"], cap=10, now=NOW, owed_before="2026-11-28T16:50:00.000000Z")
    assert soon.send_job is False
    # Then one past it sends the owed job
    late = inbox.add(C, ["K3"], cap=10, now=NOW, owed_before="2026-11-28T17:01:00.000000Z")
    assert late.send_job is True
    assert late.ticket == 3


def test_a_job_recorded_sent_is_not_sent_again(inbox: PushInboxRepo) -> None:
    inbox.add(C, ["K1"], cap=10, now="2026-11-28T17:00:00.000000Z")
    inbox.job_sent(C, "2026-11-28T17:00:00.100000Z")
    # A worker backlog: the job waits in the queue for an hour; pushes keep coming
    later = inbox.add(C, ["K2"], cap=10, now=NOW, owed_before="2026-11-28T18:00:00.000000Z")
    assert later.send_job is False
    # And after the take, the next flip owes a job of its own
    inbox.open(C)
    assert inbox.add(C, ["K3"], cap=10, now=NOW, owed_before="2026-11-28T18:00:00.000000Z").send_job
