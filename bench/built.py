"""7. Built artefacts: the import of each function as Lambda runs it, from what `sam build` ships.

The artefacts are those local/lambda_build.py makes (the Makefile's build, here for this machine's
architecture so they can run): a fresh interpreter with only the function's folder and its layers on
the path (no site-packages), writing no bytecode (Lambda's code directories are read-only), the
import timed inside the process. For the chat function the import includes SnapStart's warm-up (the
turn path: agno, the anthropic SDK, Pillow...), which a cold start without SnapStart pays on its
first turn. The reference is bare agno (``import agno.agent, agno.models.anthropic``) from the same
built layer; "no bytecode" is the chat function's source as SAM's python3.13 build shipped it (every
module compiled at each cold start).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import say
from bench.stats import median, p90, table

ROOT = Path(__file__).resolve().parents[1]
TIMED = "import time\nt = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"
CHAT_WARM = "import chat_api\nfrom chatcore.web import snapstart\nsnapstart.warm()"


def _once(command: list[str], env: dict[str, str]) -> float:
    r = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    if r.returncode != 0:
        raise RuntimeError(f"{command[-1][:80]} failed:\n{r.stderr[-2000:]}")
    return float(r.stdout.split()[-1])


def run(repeat: int) -> dict:
    from local import artefacts

    say("bench: built artefacts (local/artefacts.py builds them once per change of their inputs)")
    root = artefacts.build()
    env = artefacts.import_env()
    targets = {
        "chat: import chat_api + SnapStart warm-up": (artefacts.CHAT, CHAT_WARM),
        "chat: import chat_api": (artefacts.CHAT, "import chat_api"),
        "api: import api_app": (artefacts.API, "import api_app"),
        "bare agno (agno.agent, agno.models.anthropic)": (("AgentsLayer/python", "CoreLayer/python"),
                                                          "import agno.agent, agno.models.anthropic"),
    }
    out: dict[str, list[float]] = {name: [] for name in targets}
    out["chat, no bytecode (source only, as before)"] = []
    with tempfile.TemporaryDirectory() as empty:
        # the source tree with a bytecode cache that is empty and never written: every module compiled
        source_env = {**env, "PYTHONPYCACHEPREFIX": empty, "PYTHONDONTWRITEBYTECODE": "1",
                      "PYTHONPATH": os.pathsep.join([str(ROOT / "functions/chat"), str(ROOT / "layers/core")])}
        source_cmd = [sys.executable, "-c", TIMED.format(code=CHAT_WARM)]
        for rnd in range(repeat + 1):  # one untimed round: files in the page cache
            for name, (parts, code) in targets.items():
                seconds = _once(artefacts.import_command(root, parts, TIMED.format(code=code)), env)
                if rnd:
                    out[name].append(seconds)
            seconds = _once(source_cmd, source_env)
            if rnd:
                out["chat, no bytecode (source only, as before)"].append(seconds)
    out["_sizes"] = {"chat + layers (arm64)": sum(artefacts.size_bytes(artefacts.build("arm64") / p.split("/")[0])
                                                  for p in artefacts.CHAT)}
    return out


def report(res: dict) -> str:
    bare = median(res["bare agno (agno.agent, agno.models.anthropic)"])
    lines = ["", "7. BUILT ARTEFACTS (import as Lambda runs it: read-only, no site-packages; seconds)"]
    rows = [[name, f"{median(xs):.3f}", f"{p90(xs):.3f}", f"{median(xs) / bare:.2f}x"]
            for name, xs in res.items() if not name.startswith("_")]
    lines.append(table(["", "median", "p90", "vs bare agno"], rows))
    lines.append("  " + ", ".join(f"{k}: {v / 1e6:.1f} MB unzipped" for k, v in res["_sizes"].items()))
    return "\n".join(lines)
