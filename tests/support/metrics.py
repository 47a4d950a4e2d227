"""The CloudWatch embedded metric format (EMF) documents among a process's output lines."""

from __future__ import annotations

import json


def emf_lines(text: str) -> list[dict]:
    """Each EMF document of ``text`` (a line starting ``{"_aws"``), parsed."""
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]
