"""What a turn leaves behind: its run row, and what the stand-in model was sent (the image blocks of
a request) and reported (the usage of every request it answered)."""

from __future__ import annotations


def run_row(db_conn, run_id):
    return db_conn.execute("SELECT * FROM runs WHERE id = %s", (run_id,)).fetchone()


def reported_usage(standin):
    """Sum of the usage the stand-in reported for every request it answered."""
    total = {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0}
    for r in standin.requests():
        u = r["response"].get("usage")
        if not u:
            continue
        total["input_tokens"] += u["input_tokens"]
        total["output_tokens"] += u["output_tokens"]
        total["cache_read_tokens"] += u["cache_read_input_tokens"]
        total["cache_write_tokens"] += u["cache_creation_input_tokens"]
    return total


def image_blocks(body: dict) -> list[dict]:
    """Every image block of a Messages API request body, those inside tool results included."""
    found = []
    for message in body.get("messages") or []:
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block.get("type") == "image":
                found.append(block)
            for inner in block.get("content") or [] if isinstance(block.get("content"), list) else []:
                if isinstance(inner, dict) and inner.get("type") == "image":
                    found.append(inner)
    return found



def recall_of(body: dict) -> str | None:
    """The recall of the user's memories a Messages API request holds (its text), or None."""
    from local.anthropic_standin import recall_text

    return recall_text(body.get("messages") or [])
