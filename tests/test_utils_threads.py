"""``utils.threads.one_torch_thread``: one torch thread inside, the setting restored."""

from __future__ import annotations

import threading

import torch

from pylate_clone.utils.threads import one_torch_thread, outer_num_threads


def test_one_thread_inside_and_restored_after_nesting():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_torch_thread():
            assert torch.get_num_threads() == 1
            assert outer_num_threads() == 2
            with one_torch_thread():
                assert torch.get_num_threads() == 1
            assert torch.get_num_threads() == 1  # the outer block still holds it
        assert torch.get_num_threads() == 2
        assert outer_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_overlapping_threads_restore_once_the_last_leaves():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    entered, release = threading.Barrier(2), threading.Event()
    seen = []

    def worker():
        with one_torch_thread():
            entered.wait()
            release.wait()
        seen.append(torch.get_num_threads())

    try:
        thread = threading.Thread(target=worker)
        thread.start()
        with one_torch_thread():
            entered.wait()
            release.set()
            thread.join()
            assert seen == [1]  # the worker left first: still one thread
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
