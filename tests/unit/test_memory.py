"""A finished job's freed memory goes back to the system (worker.memory), so a long-running worker stays its size."""

from __future__ import annotations

import threading

import psutil
import pytest

from worker.memory import _malloc_trim, return_freed_memory


@pytest.mark.skipif(_malloc_trim() is None, reason="the C library has no malloc_trim (not glibc)")
def test_the_pages_a_job_freed_on_its_own_thread_go_back_to_the_system():
    """What a job allocates on another thread (the pusher, PyTorch's) and frees stays resident in that thread's
    arena until it is trimmed: here 200 MB of 1.5 kB blocks, one in a thousand kept alive among them."""
    process = psutil.Process()

    def job(kept: list) -> None:
        blocks = [bytes(1500) + bytes([index % 256]) for index in range(150_000)]
        kept.extend(blocks[::1000])

    kept: list = []
    before = process.memory_info().rss
    thread = threading.Thread(target=job, args=(kept,))
    thread.start()
    thread.join()
    assert process.memory_info().rss - before > 150 * 2**20  # freed, yet resident

    returned = return_freed_memory(after="a test job")

    assert returned > 150 * 2**20
    assert process.memory_info().rss - before < 50 * 2**20
    assert len(kept) == 150 and kept[1][-1] == 1000 % 256  # what the job kept is intact
