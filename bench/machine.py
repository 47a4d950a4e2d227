"""The machine's conditions, printed before any figure."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gb() -> str:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GB"
    except OSError:
        pass
    return "?"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def git_commit() -> str:
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (head or "?") + (" with uncommitted changes" if dirty else "")


def conditions(postgres_version: str | None = None) -> list[tuple[str, str]]:
    import psycopg

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    libpq = psycopg.pq.version()
    rows = [
        ("code", f"commit {git_commit()}"),
        ("cores", f"{os.cpu_count()} (usable by this process: {affinity})"),
        ("cpu", cpu_model()),
        ("memory", memory_gb()),
        ("load average (1/5/15 min)", load_average()),
        ("os", f"{platform.system()} {platform.release()}"),
        ("python", sys.version.split()[0] + f" ({sys.executable})"),
        ("agno", _version("agno")),
        ("anthropic", _version("anthropic")),
        ("psycopg", f"{psycopg.__version__} ({psycopg.pq.__impl__}, libpq {libpq // 10000}.{libpq % 100})"),
        ("sqlalchemy", _version("sqlalchemy")),
        ("fastapi / uvicorn", f"{_version('fastapi')} / {_version('uvicorn')}"),
        ("moto", _version("moto")),
    ]
    if postgres_version:
        rows.append(("postgres", postgres_version))
    return rows


# ---- CPU used by other processes while a section runs (other developers' tests, builds...)

def _proc_stat() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, CPU ticks of the process and of its reaped children) of every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rfind(")") + 2:].split()
        # utime + stime, and cutime + cstime (children that ended and were reaped)
        out[int(entry)] = (int(rest[1]), int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14]))
    return out


def _busy_ticks() -> int:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle


class CpuMeter:
    """Share of the machine's CPU used by processes outside this benchmark (its own process tree and
    its Postgres cluster's) between ``start()`` and ``stop()``."""

    def __init__(self, roots: list[int]):
        self.roots = roots

    def _ours(self) -> int:
        procs = _proc_stat()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in procs.items():
            children.setdefault(ppid, []).append(pid)
        total, todo, seen = 0, list(self.roots), set()
        while todo:
            pid = todo.pop()
            if pid in seen or pid not in procs:
                continue
            seen.add(pid)
            total += procs[pid][1]
            todo += children.get(pid, [])
        return total

    def start(self) -> None:
        self._t0 = (time_monotonic(), _busy_ticks(), self._ours())

    def stop(self) -> dict:
        t1, busy1, ours1 = time_monotonic(), _busy_ticks(), self._ours()
        t0, busy0, ours0 = self._t0
        hz = os.sysconf("SC_CLK_TCK")
        capacity = (t1 - t0) * hz * (os.cpu_count() or 1)
        other = max(0, (busy1 - busy0) - (ours1 - ours0))
        return {"other_pct": 100 * other / capacity if capacity else 0.0,
                "ours_pct": 100 * (ours1 - ours0) / capacity if capacity else 0.0}


def time_monotonic() -> float:
    import time

    return time.monotonic()
