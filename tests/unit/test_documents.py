"""A turn's PDFs checked at the door (``chatcore.media.documents``): parsed with pypdf, each refusal a
422 ``invalid-document`` naming its reason; pypdf is imported only when a document arrives."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest

from chatcore.errors import InvalidDocument, PayloadTooLarge
from chatcore.media.documents import clean_name, count_pages, receive_document
from local.invoke import ROOT
from tests.support.documents import corrupt_pdf, pdf


def reason(content: bytes, max_pages: int = 100) -> str:
    with pytest.raises(InvalidDocument) as info:
        count_pages(content, where="documents[0]", field="documents[0].data", max_pages=max_pages)
    assert info.value.status == 422 and info.value.code == "invalid-document"
    return info.value.extra["reason"]


def test_each_refusal_names_its_reason():
    assert count_pages(pdf(3), where="d", field="f", max_pages=100) == 3
    assert reason(b"hello, not a PDF at all") == "not-a-pdf"
    assert reason(corrupt_pdf()) == "corrupt"
    assert reason(pdf(2, password="pw")) == "encrypted"
    assert reason(pdf(12), max_pages=10) == "too-many-pages"
    assert count_pages(b"\n" * 100 + pdf(1), where="d", field="f", max_pages=1) == 1  # junk before the header is allowed


def test_base64_in_a_body_is_decoded_bounded_and_named():
    doc = receive_document(base64.urlsafe_b64encode(pdf(2)).decode().rstrip("="), "C:\\Users\\me\\lease.pdf",
                           index=1, max_bytes=10**6, max_pages=100)
    assert (doc.pages, doc.name, doc.mime_type) == (2, "lease.pdf", "application/pdf")
    with pytest.raises(PayloadTooLarge):
        receive_document(base64.b64encode(pdf(2)).decode(), None, index=0, max_bytes=100, max_pages=100)
    with pytest.raises(InvalidDocument) as info:
        receive_document("not base64!!", None, index=2, max_bytes=10**6, max_pages=100)
    assert info.value.extra["field"] == "documents[2].data"
    assert clean_name("../../etc/\x00passwd") == "passwd" and clean_name("  ") is None


def test_pypdf_is_loaded_only_where_a_document_is_handled():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers" / "core"),
                                                        str(ROOT / "functions" / "api"),
                                                        str(ROOT / "functions" / "chat")]),
           "DATABASE_URL": "postgresql://never@127.0.0.1:1/x", "MEDIA_BUCKET": "never"}
    code = ("import sys, api_app, chat_api; from chatcore.media import uploads, documents; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pypdf'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
