"""6. Cold start: the import time of each function's entry module in a fresh process.

Each entry module is imported by a new interpreter (``python -c``) with the function's folder and
the shared layer on ``PYTHONPATH`` (as Lambda's /var/task and /opt/python), a minimal
environment, and the time of the import itself measured inside the process (interpreter start-up
excluded). The reference is a bare ``import agno.agent, agno.models.anthropic``. One untimed round
first (bytecode caches written, files in the page cache), then N rounds, the targets interleaved.
For the chat function, the same import split into steps in one process (agno first, then the
other heavy packages it loads, then the rest) attributes the time beyond the bare agno import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.harness import say
from bench.stats import median, p90, table

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers" / "core"

# name: (path shown, folder put on PYTHONPATH, module imported, runs agents)
FUNCTIONS = {
    "chat": ("functions/chat/chat_api.py", "functions/chat", "chat_api", True),
    "api": ("functions/api/api_app.py", "functions/api", "api_app", False),
    "scheduled": ("functions/scheduled/handler.py", "functions/scheduled", "handler", False),
    "account": ("functions/account/handler.py", "functions/account", "handler", False),
    "migrate": ("functions/migrate/handler.py", "functions/migrate", "handler", False),
}
BARE = "agno.agent, agno.models.anthropic"

PROBE = """
import json, sys, time
t = time.perf_counter()
import {module}
elapsed = time.perf_counter() - t
print(json.dumps({{"seconds": elapsed, "modules": len(sys.modules), "agno": "agno" in sys.modules,
                  "packages": sorted({{m.split(".")[0] for m in sys.modules}})}}))
"""


def _env(folder: str | None) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    # the settings every function has in Lambda (the rollup and account functions read them at import);
    # nothing connects
    env.update({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "MEDIA_BUCKET": "none"})
    env["PYTHONPATH"] = os.pathsep.join([str(LAYER)] + ([str(ROOT / folder)] if folder else []))
    return env


def _probe(module: str, folder: str | None, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *flags, "-c", PROBE.format(module=module)], env=_env(folder),
                          cwd=str(ROOT), capture_output=True, text=True, timeout=120)


def _measure(module: str, folder: str | None) -> dict:
    p = _probe(module, folder)
    if p.returncode != 0:
        raise RuntimeError(f"import {module} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# What the chat function imports beyond the bare agno import, step by step in one fresh process
# (each step only if the chat import loads that package): the time each step adds.
STEPS = [
    ("agno.agent + agno.models.anthropic", "agno", "import agno.agent, agno.models.anthropic"),
    ("fastapi (+ starlette)", "fastapi", "import fastapi"),
    ("psycopg + psycopg_pool", "psycopg", "import psycopg, psycopg_pool"),
    ("aws_lambda_powertools", "aws_lambda_powertools", "from aws_lambda_powertools import Logger, Metrics, Tracer"),
    ("aws_xray_sdk + botocore (the X-Ray tracer and its patches)", "aws_xray_sdk",
     "import aws_xray_sdk.core, botocore.session"),
    ("boto3", "boto3", "import boto3"),
    ("the rest: chatcore, chat_api", None, "import {module}"),
]

STEP_PROBE = """
import json, sys, time
out = []
for label, code in {steps!r}:
    t = time.perf_counter()
    exec(code)
    out.append((label, time.perf_counter() - t))
print(json.dumps(out))
"""


def _attribution(module: str, folder: str, packages: set[str], processes: int) -> list[tuple[str, float]]:
    steps = [(label, code.format(module=module)) for label, pkg, code in STEPS if pkg is None or pkg in packages]
    runs: list[list[tuple[str, float]]] = []
    for _ in range(processes):
        p = subprocess.run([sys.executable, "-c", STEP_PROBE.format(steps=steps)], env=_env(folder),
                           cwd=str(ROOT), capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"import steps failed:\n{p.stderr[-2000:]}")
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return [(label, median([r[i][1] for r in runs])) for i, (label, _) in enumerate(steps)]


def run(repeat: int) -> dict:
    targets = {name: (path, folder, module) for name, (path, folder, module, _) in FUNCTIONS.items()
               if (ROOT / path).exists()}
    targets["bare"] = (f"import {BARE}", None, BARE)
    say(f"bench: cold start, {len(targets)} imports x {repeat} fresh processes (+1 untimed round)")
    out = {name: {"path": path, "seconds": [], "modules": 0, "agno": False,
                  "agents": FUNCTIONS.get(name, (None, None, None, True))[3]}
           for name, (path, _, _) in targets.items()}
    for rnd in range(repeat + 1):
        for name, (_, folder, module) in targets.items():
            m = _measure(module, folder)
            if rnd > 0:
                out[name]["seconds"].append(m["seconds"])
            out[name]["modules"], out[name]["agno"] = m["modules"], m["agno"]
            out[name]["packages"] = set(m["packages"])
    if "chat" in targets:
        out["_attribution"] = _attribution(targets["chat"][2], targets["chat"][1], out["chat"]["packages"],
                                           max(3, repeat))
    for entry in out.values():
        if isinstance(entry, dict):
            entry.pop("packages", None)
    return out


def report(res: dict) -> str:
    lines = ["", "6. COLD START (import of the entry module in a fresh process; seconds)"]
    rows = []
    for name, entry in res.items():
        if name.startswith("_"):
            continue
        rows.append([entry["path"], f"{median(entry['seconds']):.3f}", f"{p90(entry['seconds']):.3f}",
                     str(entry["modules"]), "yes" if entry["agno"] else "no"])
    lines.append(table(["", "median", "p90", "modules", "agno"], rows))
    if "_attribution" in res:
        lines.append("  the chat import step by step in one process (medians; each step only what it adds): "
                     + ", ".join(f"{label} {t * 1000:.0f} ms" for label, t in res["_attribution"]))
    return "\n".join(lines)
