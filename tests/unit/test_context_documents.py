"""PDF documents in the model's input (``chatcore.turns.context``): counted by pages (the page budget,
CONTEXT_MAX_DOCUMENT_PAGES), by their base64 bytes (the byte budget) and in the token estimate
(PAGE_TOKENS a page, on top of the conversation's budget); the newest documents kept first and
older ones replaced by a placeholder naming them in the model's copy; a new message over the page
budget refused before anything is stored."""

from __future__ import annotations

import math

import pytest
from agno.media import File
from agno.models.message import Message

from chatcore.errors import ContextTooLarge
from chatcore.turns.context import (
    PAGE_TOKENS, REQUEST_OVERHEAD_BYTES, Budgets, build_context, check_fits, document_pages, message_bytes,
    message_tokens,
)

BIG = Budgets(max_tokens=1_000_000, max_images=100, max_bytes=10**9, max_pages=100)


def doc(pages: int, size: int = 3000, name: str = "a.pdf") -> File:
    return File(content=b"%PDF-" + b"x" * (size - 5), mime_type="application/pdf", name=name,
                metadata={"pages": pages}, citations=False)


def turn(text: str, *docs: File) -> list[Message]:
    return [Message(role="user", content=text, files=list(docs) or None), Message(role="assistant", content="ok")]


def test_a_document_counts_its_pages_and_its_base64_bytes_but_not_in_the_conversations_tokens():
    m = Message(role="user", content="read", files=[doc(7, size=3000)])
    assert document_pages(m) == 7
    assert message_bytes(m) == len("read") * 2 + 4 * math.ceil(3000 / 3)
    assert message_tokens(m) == message_tokens(Message(role="user", content="read"))
    ctx = build_context([], m, BIG, overhead_tokens=100)
    assert ctx.pages == 7 and ctx.tokens == 100 + message_tokens(m) + 7 * PAGE_TOKENS


def test_older_documents_become_a_placeholder_once_the_pages_do_not_fit():
    first, second = doc(60, name="lease.pdf"), doc(30, name="payslip.pdf")
    h = [*turn("the lease", first), *turn("the payslip", second)]
    new = Message(role="user", content="and this", files=[doc(20, name="letter.pdf")])
    ctx = build_context(h, new, BIG, overhead_tokens=100)
    # 20 (new) + 30 fit the 100 pages; the 60-page lease does not: its turn stays, its PDF is a placeholder
    assert ctx.turns_left_out == 0 and ctx.documents_left_out == 1 and ctx.pages == 50
    assert h[0].files is None and "lease.pdf (60 pages)" in h[0].content and h[0].content.startswith("the lease\n")
    assert h[2].files == [second]


def test_the_decision_alone_changes_nothing():
    h = turn("the lease", doc(90, name="lease.pdf"))
    ctx = build_context(h, Message(role="user", content="q", files=[doc(20)]), BIG, overhead_tokens=100, apply=False)
    assert ctx.documents_left_out == 1 and h[0].files and h[0].content == "the lease"


def test_the_byte_budget_counts_documents_too():
    h = turn("old", doc(1, size=600_000, name="big.pdf"))
    new = Message(role="user", content="q")
    budget = Budgets(max_tokens=1_000_000, max_images=100, max_pages=100,
                     max_bytes=REQUEST_OVERHEAD_BYTES + message_bytes(new) + 600_000)
    ctx = build_context(h, new, budget, overhead_tokens=100)
    assert ctx.documents_left_out == 1 and ctx.turns_left_out == 0 and ctx.encoded_bytes <= budget.max_bytes


def test_a_new_message_over_the_page_budget_is_refused_and_the_pages_budget_is_not_halved():
    with pytest.raises(ContextTooLarge) as info:
        check_fits(Message(role="user", content="q", files=[doc(80), doc(30)]), BIG, overhead_tokens=100)
    assert "110 PDF page(s)" in info.value.detail and "CONTEXT_MAX_DOCUMENT_PAGES" in info.value.detail
    check_fits(Message(role="user", content="q", files=[doc(100)]), BIG, overhead_tokens=100)
    assert BIG.shrunk(2).max_pages == 100
