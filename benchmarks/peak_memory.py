"""Peak memory of a block of work: CUDA's allocator peak, or on the CPU the resident set sampled every 5 ms."""

from __future__ import annotations

import threading

import psutil
import torch


class PeakMemory:
    """``with PeakMemory() as peak: ...`` then ``peak.bytes``: the most memory in use above the start."""

    def __enter__(self) -> PeakMemory:
        self.cuda = torch.cuda.is_available()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
            return self
        self.process = psutil.Process()
        self.start = self.high = self.process.memory_info().rss
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self):
        while not self.done.wait(0.005):
            self.high = max(self.high, self.process.memory_info().rss)

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.bytes = torch.cuda.max_memory_allocated() - self.start
        else:
            self.done.set()
            self.thread.join()
            self.bytes = max(self.high, self.process.memory_info().rss) - self.start
