"""What a push notification says (``chatcore.notify.pushes``): the lock screen's text by the device's
locale, generic unless the user opted in to a preview, the data the app resumes from, a collapse id
per session; and its metrics (``PushesSent``, ``PushFailures``). Pure: no SNS, no database."""

from __future__ import annotations

import json
import uuid

from chatcore import observability
from chatcore.notify.pushes import PREVIEW_CHARS, Push, language, preview_of
from tests.support.metrics import emf_lines

SESSION, RUN = uuid.UUID(int=1), uuid.UUID(int=2)


def finished(preview: str | None = "The answer, at length. " * 20) -> Push:
    return Push("turn_finished", SESSION, RUN, 7, "turn_finished", preview=preview_of(preview),
                extra={"final_event_id": "41", "status": "completed"})


def test_afrikaans_from_the_locale_english_otherwise():
    assert [language(x) for x in ("af", "af-ZA", "af_ZA", "AF-za")] == ["af"] * 4
    assert [language(x) for x in (None, "", "en-US", "zu-ZA", "afr", "x")] == ["en"] * 6


def test_the_preview_is_one_line_of_at_most_100_characters():
    assert preview_of(None) is None and preview_of("  \n ") is None
    assert preview_of("short\nanswer") == "short answer"
    long = preview_of("word " * 100)
    assert len(long) == PREVIEW_CHARS and long.endswith("…")


def test_generic_text_unless_the_preview_is_shown_and_the_data_for_every_platform():
    push = finished()
    generic = push.message("af-ZA", show_preview=False)
    apns = json.loads(generic["APNS"])
    assert apns["aps"]["alert"] == {"title": "Jou antwoord is gereed", "body": "Maak die app oop om dit te lees."}
    assert "answer" not in json.dumps(generic)
    assert apns["aps"]["thread-id"] == str(SESSION) and generic["APNS_SANDBOX"] == generic["APNS"]
    data = {"kind": "turn_finished", "session_id": str(SESSION), "run_id": str(RUN), "last_event_id": "7",
            "final_event_id": "41", "status": "completed"}
    assert {k: apns[k] for k in data} == data
    fcm = json.loads(generic["GCM"])["fcmV1Message"]["message"]
    assert fcm["data"] == data and all(isinstance(v, str) for v in fcm["data"].values())
    assert fcm["android"]["collapse_key"] == str(SESSION)
    shown = json.loads(push.message("en-GB", show_preview=True)["GCM"])["fcmV1Message"]["message"]
    assert shown["notification"] == {"title": "Your answer is ready", "body": preview_of("The answer, at length. " * 20)}
    # nothing to preview: the generic text even when the user opted in
    bare = json.loads(finished(None).message("en", show_preview=True)["APNS"])
    assert bare["aps"]["alert"]["body"] == "Open the app to read it."


def test_push_metrics_are_emf_in_lambda_and_never_raise(monkeypatch, capsys):
    monkeypatch.setattr(observability, "in_lambda", lambda: True)
    observability.record_push("turn_finished", sent=2, failed=1)
    (doc,) = emf_lines(capsys.readouterr().out)
    assert doc["PushesSent"] == [2.0] and doc["PushFailures"] == [1.0] and doc["push_kind"] == "turn_finished"
    observability.record_push("budget", sent="x", failed=None)  # type: ignore[arg-type]
    observability.record_push("budget", sent=1, failed=0)
    assert [d["PushesSent"] for d in emf_lines(capsys.readouterr().out)] == [[1.0]]
