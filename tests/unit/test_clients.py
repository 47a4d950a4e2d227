"""bin/clients (``local/clients.py``) without its tools: which generator warnings fail a run, how the
Kotlin client's OkHttp 4 imports are pointed at the compatibility file, and that the programs it
builds against each client use the document's operation names. CI runs bin/clients itself."""

from __future__ import annotations

import json
import re

from local import clients


def test_a_generator_warning_fails_the_run_unless_it_is_a_known_one():
    log = "\n".join([
        "[main] INFO  o.o.codegen.DefaultGenerator - writing file Problem.kt",
        "[main] WARN  o.o.codegen.DefaultCodegen - OpenAPI 3.1 support is still in beta. To report ...",
        "[main] WARN  o.o.codegen.utils.ModelUtils - Failed to get the schema name: null",
        "[main] WARN  o.o.codegen.DefaultCodegen - Multiple MediaTypes found, using only the first one",
        "⚠️ warning: duplicate operationId listSessions",
    ])
    assert clients.unexpected_warnings(log) == [
        "[main] WARN  o.o.codegen.DefaultCodegen - Multiple MediaTypes found, using only the first one",
        "⚠️ warning: duplicate operationId listSessions"]
    assert clients.unexpected_warnings("Done! Your output is in ./client") == []


def test_the_kotlin_clients_okhttp4_imports_are_pointed_at_the_compatibility_file(tmp_path):
    api = tmp_path / "dev" / "agentchat" / "client" / "infrastructure" / "ApiClient.kt"
    api.parent.mkdir(parents=True)
    api.write_text("package dev.agentchat.client.infrastructure\n\nimport okhttp3.OkHttpClient\n"
                   "import okhttp3.RequestBody.Companion.toRequestBody\n"
                   "import okhttp3.MediaType.Companion.toMediaTypeOrNull\n\nval x = 1\n")
    reader = tmp_path / "ApiDocReader0.kt"  # no package line: the docs' reader
    reader.write_text("import okhttp3.OkHttpClient\nimport okhttp3.MediaType.Companion.toMediaType\n")
    model = tmp_path / "Money.kt"
    model.write_text("package dev.agentchat.client.models\n\ndata class Money(val usd: String)\n")
    clients._okhttp4_on_okhttp3(tmp_path)
    text = api.read_text()
    assert "import okhttp3compat.*" in text.splitlines()[2]
    assert "import okhttp3compat.toRequestBody" in text and "import okhttp3compat.toMediaTypeOrNull" in text
    assert "Companion" not in text and "import okhttp3.OkHttpClient" in text
    assert reader.read_text() == ("import okhttp3compat.*\nimport okhttp3.OkHttpClient\n"
                                  "import okhttp3compat.toMediaType\n")
    assert model.read_text() == "package dev.agentchat.client.models\n\ndata class Money(val usd: String)\n"
    compat = (tmp_path / "OkHttp4Compat.kt").read_text()
    for name in ("toRequestBody", "toMediaType", "toMediaTypeOrNull", "toHttpUrlOrNull", "asRequestBody", "toHeaders"):
        assert f".{name}(" in compat, name


def test_the_programs_built_against_the_clients_use_the_documents_operation_names():
    doc = json.loads(clients.OPENAPI.read_text())
    ids = {op["operationId"] for item in doc["paths"].values() for op in item.values()}
    used_ts = set(re.search(r"import \{([^}]*)\} from \"\./client\";", clients.TS_USAGE).group(1).replace(" ", "").split(","))
    used_kotlin = set(re.findall(r"Api::(\w+)", clients.KOTLIN_USAGE))
    assert used_ts <= ids and used_kotlin <= ids and {"streamTurn", "streamTurnEvents"} <= used_kotlin
    assert "fun sendTurn(" in "".join(clients.doc_blocks("kotlin"))  # the docs' SSE reader is compiled too
    assert "sseMaxRetryAttempts" in "".join(clients.doc_blocks("typescript"))  # and the retry cap example


def test_the_web_client_uses_the_documents_operations_and_pins_its_dependencies():
    """clients/typescript/check.ts (run against bin/serve by bin/clients): what it calls of the generated
    client is in the document, and its npm dependencies have one exact version each."""
    doc = json.loads(clients.OPENAPI.read_text())
    ids = {op["operationId"] for item in doc["paths"].values() for op in item.values()}
    program = (clients.WEB_CLIENT / "check.ts").read_text()
    imported = re.search(r"import \{([^}]*)\} from \"\./client\";", program).group(1)
    used = {name.strip() for name in imported.split(",") if name.strip()}
    assert used <= ids and {"createResumeToken", "streamTurnEvents", "cancelTurn", "createUpload"} <= used
    assert {"eventsource", "eventsource-parser"} <= set(clients.node_packages())
    kotlin = clients.KOTLIN_CLIENT.read_text()
    assert "sendTurn(" in kotlin and "fun sendTurn(" in "".join(clients.doc_blocks("kotlin"))  # the docs' reader, run
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in clients.node_packages().values())
