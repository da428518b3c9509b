"""Bulk jobs raise the cyclic collector's thresholds while any of them runs, and give the process's own back
when the last one ends — also when one fails, and when two overlap in threads."""

from __future__ import annotations

import gc
import threading

import pytest

from tutti.platform.collector import BULK_THRESHOLDS, fewer_collections


@pytest.fixture
def thresholds():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_thresholds_are_raised_inside_and_restored_after(thresholds):
    with fewer_collections():
        assert gc.get_threshold() == BULK_THRESHOLDS
        with fewer_collections():  # a second sender in the same process
            assert gc.get_threshold() == BULK_THRESHOLDS
        assert gc.get_threshold() == BULK_THRESHOLDS  # the first is still running
    assert gc.get_threshold() == (700, 10, 10)
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("the send failed")
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_jobs_in_threads_restore_once_the_last_ends(thresholds):
    first_in, second_done, seen = threading.Event(), threading.Event(), []

    def first():
        with fewer_collections():
            first_in.set()
            second_done.wait(5)
            seen.append(gc.get_threshold())  # the second one ended meanwhile: still raised

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(5)
    with fewer_collections():
        pass
    second_done.set()
    thread.join(5)
    assert seen == [BULK_THRESHOLDS] and gc.get_threshold() == (700, 10, 10)
