"""Peak memory of a process tree: Beam's multi-process mode runs its work in child processes,
whose memory the kernel's per-process peak (ru_maxrss) does not add up."""

import os
import threading


def tree_rss_mb(root: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    parents, rss = {}, {}
    page = os.sysconf('SC_PAGE_SIZE')
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as file:
                fields = file.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        rss[int(entry)] = int(fields[21]) * page
    tree, added = {root}, True
    while added:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= children
        added = bool(children)
    return sum(rss.get(pid, 0) for pid in tree) / 2**20


class TreePeak:
    """Samples tree_rss_mb(pid) every `interval` seconds until stopped; `peak_mb` is the
    largest sum seen (a sample can miss a peak shorter than the interval)."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.peak_mb = 0.0
        self._pid, self._interval = pid, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, tree_rss_mb(self._pid))
            self._stop.wait(self._interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb
