"""PDF documents of a turn (a lease, a payslip, a school letter), checked at the door by parsing them.

A turn sends a PDF as base64 (``documents[i].data``, within the 6 MB body) or through an upload
(``POST /uploads`` with ``application/pdf``, up to DOCUMENT_MAX_BYTES, 32 MB). Each is read with pypdf
before anything is stored or any model call is made, and refused with 422 ``invalid-document``
naming its ``reason``:

- ``not-a-pdf``: no ``%PDF-`` header in its first KB;
- ``corrupt``: pypdf cannot read its structure or its pages (or it has none);
- ``encrypted``: password-protected (the model cannot read it);
- ``too-many-pages``: more than DOCUMENT_MAX_PAGES (default 100, the Messages API's limit a request).

The PDF is kept as sent (its bytes are what the model reads), in S3 by reference like a photo; the
message row keeps the reference, its name and its page count (``chatcore.media.agno_storage``).
pypdf is imported here only, on the first document: a turn without one never loads it.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from chatcore.errors import InvalidDocument
from chatcore.media.images import decode_base64

PDF_MIME = "application/pdf"
# A PDF's header may follow a little junk (the format allows it within the first 1,024 bytes).
HEADER_WINDOW = 1024
NAME_MAX_CHARS = 200


@dataclass(frozen=True)
class DocumentUpload:
    """A checked PDF: its bytes, its page count and the name the app gave it (if any)."""

    content: bytes
    pages: int
    name: str | None = None
    mime_type: str = PDF_MIME


@lru_cache(maxsize=1)
def _pypdf() -> Any:
    import pypdf

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about lenient repairs are noise here
    return pypdf


def clean_name(name: str | None) -> str | None:
    """The file name the app gave, without a path, control characters or excess length (None if empty)."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:NAME_MAX_CHARS] or None


def count_pages(content: bytes, *, where: str, field: str, max_pages: int) -> int:
    """The page count of the PDF ``content``; InvalidDocument (422, with its ``reason``) when it is not
    one, cannot be read, is encrypted or has more than ``max_pages`` pages."""
    if b"%PDF-" not in content[:HEADER_WINDOW]:
        raise InvalidDocument(f"{where} is not a PDF (no %PDF- header)", field=field, reason="not-a-pdf")
    pypdf = _pypdf()
    try:
        reader = pypdf.PdfReader(io.BytesIO(content), strict=False)
        encrypted = reader.is_encrypted
        pages = 0 if encrypted else len(reader.pages)
    except Exception as e:  # noqa: BLE001 - pypdf raises many kinds on a broken file: all mean corrupt
        text = str(e).split("\n")[0][:200]
        raise InvalidDocument(f"{where} is a corrupt PDF: it could not be read ({e.__class__.__name__}: {text})",
                              field=field, reason="corrupt") from e
    if encrypted:
        raise InvalidDocument(f"{where} is encrypted (password-protected): the model cannot read it; send it "
                              "without a password", field=field, reason="encrypted")
    if pages < 1:
        raise InvalidDocument(f"{where} is a corrupt PDF: it has no pages", field=field, reason="corrupt")
    if pages > max_pages:
        raise InvalidDocument(f"{where} has {pages} pages; a document may have at most {max_pages} "
                              "(DOCUMENT_MAX_PAGES)", field=field, reason="too-many-pages", pages=pages,
                              max_pages=max_pages)
    return pages


def receive_document(data: str, name: str | None, *, index: int, max_bytes: int, max_pages: int) -> DocumentUpload:
    """A PDF as a turn's body sends it (base64) decoded and checked; CPU-bound, so a server calls it in a
    worker thread."""
    where = f"documents[{index}]"
    content = decode_base64(data, where=where, max_bytes=max_bytes, invalid=InvalidDocument)
    pages = count_pages(content, where=where, field=f"{where}.data", max_pages=max_pages)
    return DocumentUpload(content=content, pages=pages, name=clean_name(name))
