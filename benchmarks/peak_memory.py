"""Peak memory of a block of work: CUDA's allocator peak, or on the CPU the resident set sampled every 5 ms;
:class:`PolledPeak` samples any measure (another process's memory) on a thread."""

from __future__ import annotations

import threading

import psutil
import torch


class PolledPeak:
    """The most ``used()`` returned between ``start()`` and ``stop()``, sampled every ``interval`` seconds."""

    def __init__(self, used, interval: float = 0.005, high: int = 0):
        self.used, self.interval, self.high = used, interval, high

    def start(self) -> None:
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self):
        while not self.done.wait(self.interval):
            self.high = max(self.high, self.used())

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


class PeakMemory:
    """``with PeakMemory() as peak: ...`` then ``peak.bytes``: the most memory in use above the start."""

    def __enter__(self) -> PeakMemory:
        self.cuda = torch.cuda.is_available()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
            return self
        process = psutil.Process()
        self.start = process.memory_info().rss
        self.rss = PolledPeak(lambda: process.memory_info().rss, high=self.start)
        self.rss.start()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.bytes = torch.cuda.max_memory_allocated() - self.start
        else:
            self.rss.stop()
            self.bytes = max(self.rss.high, self.rss.used()) - self.start
