"""Generate the mobile clients from docs/openapi.json, build them, and run a web client against the
local API: `bin/clients [--keep DIR] [--only ts|kotlin] [--no-run]`.

What CI checks (it runs before the tests): the committed OpenAPI document makes clients that build,
and a real client of the generated one works against the served API.

1. ``openapi-generator validate --recommend`` on the document: any issue fails.
2. TypeScript: ``@hey-api/openapi-ts`` (``@hey-api/client-fetch``), then ``tsc --noEmit --strict`` over the
   client, a short program that uses it as docs/api.md says (operation names, Problem, Money, one type
   per event) and the TypeScript blocks of docs/api.md.
   Then the web client of ``clients/typescript/`` (``check.ts``: the generated client, ``eventsource-parser``
   and ``eventsource``, pinned in its ``package.json``) is compiled with it (``tsc --strict``).
3. Kotlin: ``openapi-generator generate -g kotlin --library jvm-okhttp4`` (gson) with ``--strict-spec``,
   then ``kotlinc -Werror`` over the client, a short program that uses it, the SSE reader of
   docs/api.md (its Kotlin blocks), so the docs' code keeps compiling, and ``clients/kotlin/Check.kt``.
4. Both clients run against a ``bin/serve`` started for them (``local_api``: its own stand-in model, CORS for
   the web page's origin): the web client with Node, the Kotlin one with Debian's JVM (``--no-run`` skips it).

A warning of either generator fails the run, except those listed in ``KNOWN_WARNINGS`` (each says why).

Tools come only from PyPI, the npm registry and Debian's archive (nothing else is reachable), and are
cached under ``${XDG_CACHE_HOME:-~/.cache}/agent-chat-backend/clients/`` so a second run is quick:

* openapi-generator: the jar inside the PyPI package ``openapi-generator-cli`` (Java 17 runs it);
* Node tools: ``@hey-api/openapi-ts`` and ``typescript`` from npm, pinned below, and the web client's own
  dependencies (its ``package.json``), in one cached folder;
* the Kotlin compiler: the npm package ``kotlin-compiler`` (the JetBrains distribution: ``kotlinc``,
  the stdlib); Maven Central and Gradle are not reachable, so there is no Gradle build;
* the generated client's libraries: ``okhttp``, ``okio`` and ``gson`` jars from Debian's packages
  (``apt-get download``, unpacked into the cache; no system change).

Debian ships OkHttp 3.13 only, and openapi-generator 7 has no OkHttp 3 library for Kotlin
(``jvm-okhttp4`` is the okhttp one). OkHttp 4 is OkHttp 3's API rewritten in Kotlin, so the client is
compiled against 3.13 with ``OKHTTP4_COMPAT``: the few Kotlin extensions of OkHttp 4 it calls
(``toMediaTypeOrNull()``, ``response.body``, ...), written over 3.13's methods, and the generated
imports of them pointed there. The models and API classes are compiled as generated. An app builds the
generated client with Gradle and OkHttp 4 as usual.

Generated code goes to a temporary directory (removed unless ``--keep DIR``), never into the repo.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPENAPI = ROOT / "docs" / "openapi.json"
WEB_CLIENT = ROOT / "clients" / "typescript"  # check.ts and the package.json of its dependencies
KOTLIN_CLIENT = ROOT / "clients" / "kotlin" / "Check.kt"  # the Kotlin client run beside the web one
WEB_ORIGIN = "https://app.example"  # the origin of the web client's page (CORS_ALLOWED_ORIGINS of its bin/serve)
API_DOC = ROOT / "docs" / "api.md"  # its Kotlin SSE reader is compiled with the Kotlin client

OPENAPI_GENERATOR_VERSION = "7.26.0"
KOTLIN_VERSION = "2.4.20"
NODE_TOOLS = {"@hey-api/openapi-ts": "0.95.0", "typescript": "5.9.3"}  # 0.95 is the last for Node 20
DEBIAN_JARS = {"libokhttp-java": "okhttp.jar", "libokio-java": "okio.jar", "libgoogle-gson-java": "gson.jar"}
KOTLIN_PACKAGE = "dev.agentchat.client"
# Short JVM runs: the C1 compiler alone starts faster (kotlinc takes ~35 % less time).
JAVA_FLAGS = ["-XX:TieredStopAtLevel=1", "-Xmx1g"]

# Generator warnings that say nothing about this document; any other warning fails the run.
KNOWN_WARNINGS = (
    # the document is OpenAPI 3.1 (FastAPI writes 3.1; pydantic's "T or null" needs it)
    "OpenAPI 3.1 support is still in beta",
    # printed once per schema with "additionalProperties": false (the request bodies refuse unknown
    # fields); the generated models are right
    "Failed to get the schema name: null",
)

OKHTTP4_COMPAT = """\
@file:JvmName("OkHttp4Compat")
package okhttp3compat

import java.io.File
import okhttp3.Headers
import okhttp3.HttpUrl
import okhttp3.MediaType
import okhttp3.RequestBody
import okhttp3.Response
import okhttp3.ResponseBody

// OkHttp 4's Kotlin API that the generated client calls, over OkHttp 3.13 (Debian's): see local/clients.py.
fun String.toMediaTypeOrNull(): MediaType? = MediaType.parse(this)
fun String.toMediaType(): MediaType = MediaType.get(this)
fun String.toHttpUrlOrNull(): HttpUrl? = HttpUrl.parse(this)
fun String.toRequestBody(contentType: MediaType? = null): RequestBody = RequestBody.create(contentType, this)
fun ByteArray.toRequestBody(contentType: MediaType? = null, offset: Int = 0, byteCount: Int = size): RequestBody =
    RequestBody.create(contentType, this, offset, byteCount)
fun File.asRequestBody(contentType: MediaType? = null): RequestBody = RequestBody.create(contentType, this)
fun Map<String, String>.toHeaders(): Headers = Headers.of(this)
val Response.code: Int get() = code()
val Response.message: String get() = message()
val Response.headers: Headers get() = headers()
val Response.body: ResponseBody? get() = body()
val HttpUrl.encodedPathSegments: List<String> get() = encodedPathSegments()
"""

# Programs that use each client as docs/api.md says: if a name or a member they use is not generated,
# the build fails. Their turn streams are read with an SSE reader (docs/api.md), not through the client.
TS_USAGE = """\
import { cancelTurn, createSession, deleteMemory, getUsage, listMemories, listMessages, streamTurnEvents, updateSettings } from "./client";
import type { FieldError, MemoryOut, Money, Problem, TurnCompleted, TurnEvent, TurnIn } from "./client";

// a turn's body with both kinds of photo: base64 and an upload (POST /uploads)
export const twoPhotos: TurnIn = {
  message: "two photos",
  images: [{ data: "aGVsbG8=", mime_type: "image/png" }, { upload_id: "0190b3f4-7c1e-7a2b-8c3d-4e5f60718293" }],
};

export async function firstPage(sessionId: string): Promise<string[]> {
  const page = await listMessages({ path: { session_id: sessionId }, query: { limit: 50, order: "asc" } });
  if (page.error) {
    const problem: Problem = page.error;
    const fields: FieldError[] = problem.errors ?? [];
    throw new Error(`${problem.code} (${problem.status}, retry after ${problem.retry_after ?? "-"} s): ` +
                    fields.map((e) => `${e.loc.join(".")}: ${e.msg}`).join("; "));
  }
  return (page.data?.items ?? []).map((m) => m.cost.usd);
}

export async function spend(): Promise<Money | undefined> {
  const created = await createSession({ body: { agent: "assistant" } });
  const usage = await getUsage({ query: { from: "2026-01-01" } });
  void created.data?.id;
  return usage.data?.totals.cost;
}

// one type per event of a turn's stream, told apart by `event` (TurnEvent in the document)
export function shown(data: TurnEvent): string {
  switch (data.event) {
    case "RunContent":
    case "TeamRunContent":
      return data.content ?? "";
    case "TurnCompleted": {
      const done: TurnCompleted = data;
      return `done: ${done.cost?.usd ?? "-"} USD, ${done.usage?.output_tokens ?? 0} tokens out`;
    }
    case "TurnFailed":
      return `failed: ${data.error.code}${data.error.retryable ? " (retry later)" : ""}`;
    default:
      return "";
  }
}

// what the assistant remembers, newest first; "Undo" of a MemoryUpdated event that saved one; memory off
export async function remembered(): Promise<string[]> {
  const page = await listMemories({ query: { limit: 50 } });
  return (page.data?.items ?? []).map((m: MemoryOut) => `${m.id}: ${m.text}`);
}

export async function undoSaved(memoryId: string): Promise<void> {
  await deleteMemory({ path: { memory_id: memoryId } });
}

export async function forgetNothingMore(): Promise<boolean | undefined> {
  const settings = await updateSettings({ body: { memory: false } });
  return settings.data?.memory;
}

export const operations = [cancelTurn, streamTurnEvents];
"""

KOTLIN_USAGE = f"""\
package {KOTLIN_PACKAGE}.usage

import {KOTLIN_PACKAGE}.apis.MemoriesApi
import {KOTLIN_PACKAGE}.apis.SessionsApi
import {KOTLIN_PACKAGE}.apis.SettingsApi
import {KOTLIN_PACKAGE}.apis.TurnsApi
import {KOTLIN_PACKAGE}.apis.UsageApi
import {KOTLIN_PACKAGE}.models.EditMemory
import {KOTLIN_PACKAGE}.models.FieldError
import {KOTLIN_PACKAGE}.models.MemoryOut
import {KOTLIN_PACKAGE}.models.Money
import {KOTLIN_PACKAGE}.models.Problem
import {KOTLIN_PACKAGE}.models.TurnCompleted
import {KOTLIN_PACKAGE}.models.TurnImage
import {KOTLIN_PACKAGE}.models.TurnIn
import com.google.gson.Gson
import java.math.BigDecimal
import java.util.UUID

// a turn's body with both kinds of photo: base64 and an upload (POST /uploads)
val twoPhotos = TurnIn(message = "two photos", images = listOf(
    TurnImage(`data` = "aGVsbG8=", mimeType = TurnImage.MimeType.imageSlashPng),
    TurnImage(uploadId = UUID.fromString("0190b3f4-7c1e-7a2b-8c3d-4e5f60718293"))))

fun describe(problem: Problem): String =
    "${{problem.code}} (${{problem.status}}, retry after ${{problem.retryAfter}} s): " +
        problem.errors.orEmpty().joinToString("; ") {{ e: FieldError -> e.loc.joinToString(".") + ": " + e.msg }}

fun dollars(cost: Money): BigDecimal = BigDecimal(cost.usd)

// one class per event of a turn's stream: the `data:` of a TurnCompleted event, read as one
fun finalCost(data: String): BigDecimal? = Gson().fromJson(data, TurnCompleted::class.java).cost?.let {{ dollars(it) }}

// "Undo" of a MemoryUpdated event that updated a memory: its previous text back
fun undoUpdate(memories: MemoriesApi, memoryId: UUID, previousText: String): MemoryOut =
    memories.editMemory(memoryId, EditMemory(text = previousText))

val operations = listOf(SessionsApi::listSessions, SessionsApi::deleteSession, TurnsApi::streamTurn,
                        TurnsApi::streamTurnEvents, TurnsApi::cancelTurn, UsageApi::getUsage,
                        MemoriesApi::listMemories, MemoriesApi::deleteMemory, MemoriesApi::deleteMemories,
                        SettingsApi::getSettings, SettingsApi::updateSettings)
"""


class Failed(Exception):
    pass


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "agent-chat-backend" / "clients"


def say(message: str) -> None:
    print(f"clients: {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None, what: str) -> str:
    """Run ``cmd``; its output (stdout and stderr) on success, ``Failed`` with it otherwise."""
    done = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise Failed(f"{what} failed (exit {done.returncode}):\n{done.stdout[-6000:]}")
    return done.stdout


def _installed(marker: Path, version: str) -> bool:
    return marker.exists() and marker.read_text().strip() == version


# ---------------------------------------------------------------------------- the tools, cached


def openapi_generator(cache: Path) -> Path:
    """The openapi-generator jar, from the PyPI package openapi-generator-cli (which bundles it)."""
    jar = cache / f"openapi-generator-{OPENAPI_GENERATOR_VERSION}.jar"
    if jar.exists():
        return jar
    say(f"fetching openapi-generator-cli=={OPENAPI_GENERATOR_VERSION} from PyPI (once)")
    venv = cache / "pip-venv"
    if not (venv / "bin" / "pip").exists():
        base = getattr(sys, "_base_executable", None) or sys.executable
        run([base, "-m", "venv", "--clear", str(venv)], what="making a venv for pip")
    with tempfile.TemporaryDirectory() as tmp:
        run([str(venv / "bin" / "pip"), "download", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--dest", tmp, f"openapi-generator-cli=={OPENAPI_GENERATOR_VERSION}"], what="pip download")
        (wheel,) = Path(tmp).glob("openapi_generator_cli-*.whl")
        with zipfile.ZipFile(wheel) as z:
            name = next(n for n in z.namelist() if n.endswith("/openapi-generator.jar"))
            partial = jar.with_suffix(".partial")
            partial.write_bytes(z.read(name))
            partial.rename(jar)
    return jar


def node_packages() -> dict[str, str]:
    """What the Node tools folder holds: the generator and the compiler, and the web client's
    dependencies (``clients/typescript/package.json``), each pinned to one version."""
    dependencies = json.loads((WEB_CLIENT / "package.json").read_text())["dependencies"]
    if unpinned := [f"{k}@{v}" for k, v in dependencies.items() if not re.fullmatch(r"\d+\.\d+\.\d+", v)]:
        raise Failed(f"clients/typescript/package.json: pin exact versions, not {', '.join(unpinned)}")
    return {**NODE_TOOLS, **dependencies}


def node_tools(cache: Path) -> Path:
    """A folder with @hey-api/openapi-ts, typescript and the web client's dependencies installed from
    npm (pinned)."""
    packages = node_packages()
    home = cache / "node-tools"
    marker = home / ".installed"
    version = json.dumps(packages, sort_keys=True)
    if _installed(marker, version) and (home / "node_modules" / ".bin" / "tsc").exists():
        return home
    say(f"installing {', '.join(f'{k}@{v}' for k, v in packages.items())} from npm (once)")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    (home / "package.json").write_text(json.dumps({"private": True, "name": "agent-chat-client-tools"}))
    run(["npm", "install", "--no-audit", "--no-fund", "--save-exact", "--loglevel=error",
         *(f"{k}@{v}" for k, v in packages.items())], cwd=home, what="npm install")
    marker.write_text(version)
    return home


def kotlin_compiler(cache: Path) -> Path:
    """kotlinc from the npm package kotlin-compiler (JetBrains' distribution, stdlib included)."""
    home = cache / f"kotlin-compiler-{KOTLIN_VERSION}"
    kotlinc = home / "package" / "bin" / "kotlinc"
    if kotlinc.exists():
        return kotlinc
    say(f"fetching kotlin-compiler@{KOTLIN_VERSION} from npm (once, ~90 MB)")
    with tempfile.TemporaryDirectory() as tmp:
        out = run(["npm", "pack", "--silent", f"kotlin-compiler@{KOTLIN_VERSION}"], cwd=Path(tmp), what="npm pack")
        tgz = Path(tmp) / out.strip().splitlines()[-1]
        partial = home.parent / f"{home.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        with tarfile.open(tgz) as t:
            t.extractall(partial, filter="tar")
        for script in (partial / "package" / "bin").iterdir():
            script.chmod(0o755)
        partial.rename(home)
    return kotlinc


def debian_jars(cache: Path) -> list[Path]:
    """okhttp, okio and gson: installed ones (/usr/share/java), else Debian's packages unpacked in the cache."""
    system = [Path("/usr/share/java") / jar for jar in DEBIAN_JARS.values()]
    if all(p.exists() for p in system):
        return system
    home = cache / "debian-jars"
    jars = [home / "usr" / "share" / "java" / jar for jar in DEBIAN_JARS.values()]
    if all(p.exists() for p in jars):
        return jars
    say(f"fetching {', '.join(DEBIAN_JARS)} from Debian (once)")
    if not shutil.which("apt-get"):
        raise Failed(f"apt-get is needed to fetch {', '.join(DEBIAN_JARS)} (or install them)")
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o777)  # apt's sandbox user writes the files
        download = ["apt-get", "download", *DEBIAN_JARS]
        done = subprocess.run(download, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0 and os.geteuid() == 0:  # a fresh machine: no package lists yet
            run(["apt-get", "update", "-qq"], what="apt-get update")
            done = subprocess.run(download, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0:
            raise Failed(f"apt-get download failed (as root, apt-get update first):\n{done.stdout[-3000:]}")
        for deb in Path(tmp).glob("*.deb"):
            run(["dpkg-deb", "-x", str(deb), str(home)], what=f"unpacking {deb.name}")
    missing = [str(p) for p in jars if not p.exists()]
    if missing:
        raise Failed(f"the Debian packages have no {missing}")
    return jars


# ---------------------------------------------------------------------------- the checks


def unexpected_warnings(output: str) -> list[str]:
    """The generator's warning lines that ``KNOWN_WARNINGS`` does not explain."""
    lines = [line for line in output.splitlines() if re.search(r"\bWARN(ING)?\b", line, re.IGNORECASE)]
    return [line for line in lines if not any(known in line for known in KNOWN_WARNINGS)]


def validate(jar: Path, spec: Path) -> None:
    out = run(["java", *JAVA_FLAGS, "-jar", str(jar), "validate", "--recommend", "-i", str(spec)],
              what="openapi-generator validate")
    if "No validation issues detected" not in out:
        raise Failed(f"openapi-generator validate reported:\n{out}")


def typescript(cache: Path, spec: Path, out: Path) -> None:
    tools = node_tools(cache)
    bin_dir = tools / "node_modules" / ".bin"
    client = out / "client"
    log = run([str(bin_dir / "openapi-ts"), "-i", str(spec), "-o", str(client), "-c", "@hey-api/client-fetch",
               "--no-log-file"], cwd=out, what="@hey-api/openapi-ts")
    if bad := unexpected_warnings(log):
        raise Failed("@hey-api/openapi-ts warned:\n" + "\n".join(bad))
    (out / "usage.ts").write_text(TS_USAGE)
    for i, block in enumerate(doc_blocks("typescript")):
        (out / f"api-doc-{i}.ts").write_text(block)
    shutil.copy(WEB_CLIENT / "check.ts", out / "check.ts")
    (out / "node_modules").symlink_to(tools / "node_modules", target_is_directory=True)
    (out / "tsconfig.json").write_text(json.dumps({
        "compilerOptions": {"target": "ES2022", "module": "ESNext", "moduleResolution": "Bundler",
                            "lib": ["ES2022", "DOM", "DOM.Iterable"], "strict": True, "noEmit": True,
                            "skipLibCheck": False, "types": []},
        "include": ["client/**/*.ts", "usage.ts", "api-doc-*.ts", "check.ts"]}, indent=2))
    run([str(bin_dir / "tsc"), "-p", str(out / "tsconfig.json"), "--noEmit", "--strict"], cwd=out,
        what="tsc --noEmit --strict (TypeScript client, its uses and the web client)")
    # the web client as Node runs it: CommonJS (the generated client's imports name no file extension)
    (out / "tsconfig.run.json").write_text(json.dumps({
        "extends": "./tsconfig.json",
        "compilerOptions": {"module": "CommonJS", "moduleResolution": "Node10", "noEmit": False,
                            "outDir": "dist"},
        "include": ["client/**/*.ts", "check.ts"]}, indent=2))
    run([str(bin_dir / "tsc"), "-p", str(out / "tsconfig.run.json")], cwd=out, what="tsc (the web client, for Node)")


def run_web_client(out: Path, api: dict[str, str]) -> str:
    """Run the compiled web client (``clients/typescript/check.ts``) against ``api`` (``local_api``);
    its report."""
    env = {**os.environ, "API_URL": api["url"], "API_TOKEN": api["token"], "STANDIN_URL": api["standin"],
           "APP_ORIGIN": WEB_ORIGIN}
    return _against(api, ["node", str(out / "dist" / "check.js")], out, env, "the web client")


@contextlib.contextmanager
def local_api(log: Path, timeout: float = 180) -> Iterator[dict[str, str]]:
    """``bin/serve`` on a free port, in a process of its own, with a stand-in model of this process
    (the web client scripts it: a slow answer to cut, resume or stop) and CORS for ``WEB_ORIGIN``:
    its ``url``, a ``token`` of a new user, the ``standin`` URL and its ``log`` (the file ``log``, its
    output). SIGTERM stops it (and its throwaway Postgres) on the way out."""
    import urllib.request

    from chatcore.web.identity import unsigned_jwt
    from local.anthropic_standin import StandinServer
    from local.ports import free_port

    standin = StandinServer()
    standin.start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "DATABASE_URL", "AWS_ENDPOINT_URL_S3")}
    env.update(ANTHROPIC_BASE_URL=standin.url, CORS_ALLOWED_ORIGINS=WEB_ORIGIN)
    with log.open("w") as sink:
        serve = subprocess.Popen([str(ROOT / "bin" / "serve"), "--port", str(port)], cwd=ROOT, env=env,
                                 stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if serve.poll() is not None:
                raise Failed(f"bin/serve exited ({serve.returncode}):\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise Failed(f"bin/serve did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield {"url": url, "token": unsigned_jwt({"sub": f"web-client-{uuid.uuid4()}"}), "standin": standin.url,
               "log": str(log)}
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
        standin.stop()


def doc_blocks(language: str) -> list[str]:
    """The code blocks of docs/api.md in ``language`` (``kotlin``: its SSE reader; ``typescript``: the
    generated client's stream with a retry cap), compiled against the generated clients."""
    blocks = re.findall(rf"^```{language}\n(.*?)^```$", API_DOC.read_text(), flags=re.M | re.S)
    if not blocks:
        raise Failed(f"docs/api.md has no {language} block to compile")
    return blocks


def _okhttp4_on_okhttp3(source: Path) -> None:
    """Point the generated imports of OkHttp 4's Kotlin extensions at ``OKHTTP4_COMPAT``."""
    for path in source.rglob("*.kt"):
        text = path.read_text()
        if "import okhttp3." not in text:
            continue
        text = re.sub(r"^import okhttp3\.\w+\.Companion\.(\w+)$", r"import okhttp3compat.\1", text, flags=re.M)
        if re.search(r"^package ", text, flags=re.M):
            text = re.sub(r"^(package .+)$", r"\1\n\nimport okhttp3compat.*", text, count=1, flags=re.M)
        else:
            text = "import okhttp3compat.*\n" + text
        path.write_text(text)
    (source / "OkHttp4Compat.kt").write_text(OKHTTP4_COMPAT)


def kotlin(cache: Path, jar: Path, spec: Path, out: Path) -> None:
    kotlinc = kotlin_compiler(cache)
    project = out / "kotlin"
    log = run(["java", *JAVA_FLAGS, "-jar", str(jar), "generate", "-i", str(spec), "-g", "kotlin", "-o", str(project),
               "--library", "jvm-okhttp4", "--strict-spec", "true",
               "--additional-properties", f"serializationLibrary=gson,packageName={KOTLIN_PACKAGE}",
               "--global-property", "apiTests=false,modelTests=false,apiDocs=false,modelDocs=false"],
              what="openapi-generator generate (Kotlin)")
    if bad := unexpected_warnings(log):
        raise Failed("openapi-generator warned (Kotlin):\n" + "\n".join(bad))
    source = project / "src" / "main" / "kotlin"
    (source / "Usage.kt").write_text(KOTLIN_USAGE)
    readers = doc_blocks("kotlin")
    for i, block in enumerate(readers):
        (source / f"ApiDocReader{i}.kt").write_text(block)
    shutil.copy(KOTLIN_CLIENT, source / "Check.kt")
    _okhttp4_on_okhttp3(source)
    env = {**os.environ, "JAVA_OPTS": os.environ.get("JAVA_OPTS", " ".join(JAVA_FLAGS))}
    run([str(kotlinc), "-Werror", "-jvm-target", "17",
         "-cp", os.pathsep.join(map(str, kotlin_classpath(cache)[1:])), "-d", str(out / "kotlin-classes"), str(source)],
        env=env, what="kotlinc -Werror (Kotlin client, the Kotlin of docs/api.md and clients/kotlin/Check.kt)")


def kotlin_classpath(cache: Path) -> list[Path]:
    """The Kotlin stdlib, then what the generated client and the docs' reader need: Debian's okhttp,
    okio and gson, and kotlinx-coroutines (kotlinc's own)."""
    lib = kotlin_compiler(cache).parent.parent / "lib"
    return [lib / "kotlin-stdlib.jar", *debian_jars(cache), lib / "kotlinx-coroutines-core-jvm.jar"]


def run_kotlin_client(cache: Path, out: Path, api: dict[str, str]) -> str:
    """Run the compiled Kotlin client (``clients/kotlin/Check.kt``) with Debian's JVM; its report."""
    classpath = os.pathsep.join(map(str, [out / "kotlin-classes", *kotlin_classpath(cache)]))
    env = {**os.environ, "API_URL": api["url"], "API_TOKEN": api["token"]}
    return _against(api, ["java", *JAVA_FLAGS, "-cp", classpath, "CheckKt"], out, env, "the Kotlin client")


def _against(api: dict[str, str], cmd: list[str], out: Path, env: dict[str, str], what: str) -> str:
    """Run a client against ``api``; when it fails, the end of bin/serve's log with its output."""
    try:
        return run(cmd, cwd=out, env=env, what=f"{what} against bin/serve")
    except Failed as e:
        raise Failed(f"{e}\n--- the end of bin/serve's log:\n{Path(api['log']).read_text()[-4000:]}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/clients", description=__doc__.split("\n")[0])
    parser.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it (default: a temp dir, removed)")
    parser.add_argument("--only", choices=("ts", "kotlin"), help="one client only")
    parser.add_argument("--spec", type=Path, default=OPENAPI, help="another OpenAPI document (default: docs/openapi.json)")
    parser.add_argument("--no-run", action="store_true", help="build the clients only: do not run them against "
                                                              "bin/serve")
    args = parser.parse_args(argv)
    spec = args.spec.resolve()
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    out = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="agent-chat-clients-"))
    if args.keep:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
    started = time.monotonic()
    try:
        step = time.monotonic()
        jar = openapi_generator(cache)
        validate(jar, spec)
        say(f"{spec.name} is valid ({time.monotonic() - step:.0f} s)")
        if args.only in (None, "ts"):
            step = time.monotonic()
            typescript(cache, spec, out)
            say(f"TypeScript client generated and type-checked ({time.monotonic() - step:.0f} s)")
        if args.only in (None, "kotlin"):
            step = time.monotonic()
            kotlin(cache, jar, spec, out)
            say(f"Kotlin client generated and compiled ({time.monotonic() - step:.0f} s)")
        if not args.no_run:
            step = time.monotonic()
            with local_api(out / "bin-serve.log") as api:
                for name, runner in (("ts", lambda: run_web_client(out, api)),
                                     ("kotlin", lambda: run_kotlin_client(cache, out, api))):
                    if args.only in (None, name):
                        print(runner().rstrip(), file=sys.stderr, flush=True)
            say(f"the clients passed against bin/serve ({time.monotonic() - step:.0f} s)")
    except Failed as e:
        say(str(e))
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    say(f"done in {time.monotonic() - started:.0f} s" + (f"; generated code in {out}" if args.keep else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
