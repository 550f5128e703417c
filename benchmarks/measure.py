"""Measuring a child process from outside: wall time, CPU, and the peak memory of its whole tree."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .scenario import RESULT_MARKER

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Measured:
    wall_seconds: float
    peak_rss_mb: float
    cpu_seconds: float  # user + system of the child and the children it waited for
    returncode: int | None
    timed_out: bool
    stdout: str
    stderr: str

    def result(self) -> dict[str, Any] | None:
        """The child's `BENCHMARK_RESULT` JSON, if it printed one."""
        lines = [line for line in self.stdout.splitlines() if line.startswith(RESULT_MARKER)]
        return json.loads(lines[-1][len(RESULT_MARKER) :]) if lines else None


PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4


class TreeRssSampler(threading.Thread):
    """Samples the summed memory (Pss) of a process and all its descendants (Linux /proc; elsewhere a no-op)."""

    INTERVAL = 0.1

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_mb = 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.INTERVAL):
            self.peak_mb = max(self.peak_mb, _tree_rss_mb(self.pid))

    def stop(self) -> float:
        self._halt.set()
        self.join()
        return self.peak_mb


def _tree_rss_mb(root: int) -> float:
    """Memory of `root` and its descendants (found through /proc/<pid>/task/<tid>/children).

    Each process counts its proportional set size (Pss): pages a forked worker still shares with its
    parent are split between them rather than counted twice. Falls back to RSS without smaps_rollup."""
    total_kb, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            total_kb += _process_memory_kb(pid)
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as children:
                    stack.extend(int(child) for child in children.read().split())
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile, or not Linux
    return total_kb / 1024


def _process_memory_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            match = re.search(r"^Pss:\s+(\d+) kB", rollup.read(), re.M)
        if match:
            return int(match.group(1))
    except OSError:
        pass
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_KB


def measure(command: list[str], env: dict[str, str], timeout: float | None = None) -> Measured:
    """Run `command`, reaping it with `os.wait4` to read its own rusage (ru_maxrss: KB on Linux),
    while a sampler follows the memory of its whole process tree."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=ROOT)
        sampler = TreeRssSampler(process.pid)
        sampler.start()
        timed_out = False
        if timeout is None:
            _, status, usage = os.wait4(process.pid, 0)
        else:
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() - started >= timeout:
                    process.kill()  # only this child, which we started
                    _, status, usage = os.wait4(process.pid, 0)
                    timed_out = True
                    break
                time.sleep(0.01)
        wall = time.perf_counter() - started
        tree_peak_mb = sampler.stop()
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        maxrss_kb = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss / 1024
        return Measured(
            wall_seconds=wall,
            peak_rss_mb=max(maxrss_kb / 1024, tree_peak_mb),
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            returncode=process.returncode,
            timed_out=timed_out,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )
