"""Cold start of the HTTP functions: their imports allocate a great many long-lived objects, and the
garbage collector's passes over that growing heap cost ~0.15 s mid-import. ``imports_frozen`` turns
the collector off while importing; afterwards what the imports made (modules, classes) is frozen,
so collections during requests skip it."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def imports_frozen() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()
