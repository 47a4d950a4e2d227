"""The benchmark command runs and prints its table. No timed assertions: figures are for people."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_cold_start_prints_its_table():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "cold_start", "--repeat", "1"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "MACHINE" in p.stdout and "6. COLD START" in p.stdout and "TARGETS" in p.stdout
    assert "functions/chat/chat_api.py" in p.stdout
    assert "import agno.agent, agno.models.anthropic" in p.stdout


def test_bench_refuses_unknown_sections():
    p = subprocess.run([sys.executable, "-m", "bench", "--only", "nonsense"], cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "unknown section" in p.stderr


def test_bench_memory_prints_its_table():
    """The memory section (issue 23) plays its 80 turns against the local stack and prints its table."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "bench", "--only", "memory"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "8. MEMORY" in p.stdout and "cache-read share, later turns" in p.stdout
    assert "memory: facts of sessions 1-3 in session 10's input   3/3" in p.stdout
