"""PDFs made here with pypdf: blank pages (a page count to test), encrypted ones, broken ones."""

from __future__ import annotations

import base64
import io
from functools import lru_cache


@lru_cache(maxsize=None)
def pdf(pages: int = 1, *, password: str | None = None, marker: str = "") -> bytes:
    """A valid PDF of ``pages`` blank pages; encrypted (AES-256) with ``password``; ``marker`` makes
    the bytes of otherwise equal PDFs differ (its metadata title)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=612, height=792)
    if marker:
        writer.add_metadata({"/Title": marker})
    if password is not None:
        writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def corrupt_pdf() -> bytes:
    """A PDF header followed by nothing a reader can use."""
    return b"%PDF-1.7\n" + b"\x00garbage that is no object, no xref and no trailer\n" * 40


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def document_blocks(body: dict) -> list[dict]:
    """Every document block of a Messages API request body."""
    return [block for message in body.get("messages") or []
            for block in (message["content"] if isinstance(message["content"], list) else [])
            if block.get("type") == "document"]
