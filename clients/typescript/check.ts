/**
 * A web app's client of the API, as a browser or React Native team would write it, run by
 * `bin/clients` (CI) against a `bin/serve` started for it, with the origin the page would have:
 *
 * - the generated client (`@hey-api/openapi-ts`, `./client`) for the JSON routes, its `Problem` for
 *   their errors, and its `streamTurnEvents` for a resume with `Last-Event-ID`;
 * - `fetch` and `eventsource-parser` for a turn's stream (the problem of a 4xx is read as such);
 * - `eventsource` (a WHATWG EventSource) for a resume with a resume token, as a browser resumes;
 * - one type per event (`TurnEvent`, told apart by `event`): `tsc --strict` checks every use.
 *
 * Each check prints its name; the first that fails ends the run with exit status 1.
 * Environment: API_URL, API_TOKEN (a token of bin/serve's user), STANDIN_URL (the stand-in model, to
 * slow an answer down), APP_ORIGIN (an origin CORS_ALLOWED_ORIGINS names).
 */

import { EventSource } from "eventsource";
import { createParser } from "eventsource-parser";

import { client } from "./client/client.gen";
import { cancelTurn, createResumeToken, createSession, createUpload, getSession, getUsage, listSessions,
         renameSession, streamTurnEvents } from "./client";
import type { ApprovalsIn, Money, Problem, TurnEvent, TurnIn } from "./client";

declare const process: { env: Record<string, string | undefined>; exitCode?: number };

function need(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const API = need("API_URL");
const TOKEN = need("API_TOKEN");
const STANDIN = need("STANDIN_URL");
const ORIGIN = need("APP_ORIGIN");

// A 2x2 PNG: a photo small enough to send inline, a real image the API decodes and normalises.
const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDK+mmyAAAAABJRU5ErkJggg==";

const FINAL = new Set<TurnEvent["event"]>(["TurnCompleted", "TurnFailed", "TurnCancelled"]);

/** Every event of a turn's stream, by name, as the served document's TurnEvent lists them (an
 * EventSource needs a listener per name; an event added to the API is listened to without a change). */
async function eventNames(): Promise<TurnEvent["event"][]> {
  const document = (await (await fetch(`${API}/openapi.json`)).json()) as {
    components: { schemas: { TurnEvent: { discriminator: { mapping: Record<string, string> } } } };
  };
  const names = Object.keys(document.components.schemas.TurnEvent.discriminator.mapping) as TurnEvent["event"][];
  check([...FINAL].every((name) => names.includes(name)), `the document's TurnEvent: ${names}`);
  return names;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
}

// ------------------------------------------------------------------ CORS, from the page's origin

/** fetch as a page of ORIGIN does: the browser adds Origin. */
function withOrigin(input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
  headers.set("Origin", ORIGIN);
  return fetch(input, { ...init, headers });
}

/** ``withOrigin``, and the answer is one the page may read. */
async function fromPage(input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> {
  const response = await withOrigin(input, init);
  checkCors(response);
  return response;
}

function checkCors(response: Response): void {
  check(response.headers.get("access-control-allow-origin") === ORIGIN,
        `${response.status} ${response.url}: no Access-Control-Allow-Origin for ${ORIGIN}`);
  const exposed = (response.headers.get("access-control-expose-headers") ?? "").toLowerCase();
  check(exposed.includes("x-run-id") && exposed.includes("retry-after"), `${response.url}: X-Run-Id not exposed`);
  check(!response.headers.has("access-control-allow-credentials"), "credentials must never be allowed");
}

client.setConfig({ baseUrl: API, auth: () => TOKEN, fetch: withOrigin });
client.interceptors.response.use((response) => {
  checkCors(response);  // every answer of the generated client's calls
  return response;
});

// ------------------------------------------------------------------ decimals

const SCALE = 10;

/** An amount of the API (a decimal string) as an integer of 10^-10 units: never a float. */
function units(amount: string): bigint {
  const match = /^(\d+)(?:\.(\d+))?$/.exec(amount);
  check(match !== null, `not a decimal string: ${JSON.stringify(amount)}`);
  const [, whole, fraction = ""] = match as RegExpExecArray;
  check(fraction.length <= SCALE, `more than ${SCALE} decimals: ${amount}`);
  return BigInt(whole + fraction.padEnd(SCALE, "0"));
}

function moneyUnits(money: Money): [bigint, bigint] {
  return [units(money.usd), units(money.zar)];
}

// ------------------------------------------------------------------ a turn's stream

interface Received {
  id: string;
  data: TurnEvent;
}

class ProblemError extends Error {
  constructor(readonly status: number, readonly problem: Problem) {
    super(`${status} ${problem.code}: ${problem.detail}`);
  }
}

/** A turn's events from a stream response (fetch + eventsource-parser), each typed by its name;
 * `stopAfter` cuts the connection there, as a phone losing its network does. */
async function readEvents(response: Response, stopAfter?: (events: Received[]) => boolean,
                          cut?: AbortController): Promise<Received[]> {
  if (response.status !== 200) {
    check((response.headers.get("content-type") ?? "").startsWith("application/problem+json"),
          `${response.status} without a problem`);
    throw new ProblemError(response.status, (await response.json()) as Problem);
  }
  const events: Received[] = [];
  let done = false;
  const parser = createParser({
    onEvent(message) {
      const data = JSON.parse(message.data) as TurnEvent;
      check(data.event === message.event, `the data of ${message.event} names ${data.event}`);
      events.push({ id: message.id ?? "", data });
      // a turn paused for the user's approval ends its stream too (the decision streams the rest)
      if (FINAL.has(data.event) || data.event === "TurnPaused" || stopAfter?.(events)) done = true;
    },
  });
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  while (!done) {
    const { value, done: ended } = await reader.read();
    if (ended) break;
    parser.feed(decoder.decode(value, { stream: true }));
  }
  if (cut) cut.abort();
  else await reader.cancel();
  return events;
}

async function postTurn(sessionId: string, body: TurnIn, cut?: AbortController): Promise<Response> {
  return fromPage(`${API}/sessions/${sessionId}/turns`, {
    method: "POST", body: JSON.stringify(body), signal: cut?.signal,
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json", Accept: "text/event-stream" },
  });
}

/** A whole turn: its run id (X-Run-Id, readable from the page) and its events to the final one. */
async function turn(sessionId: string, body: TurnIn): Promise<{ runId: string; events: Received[] }> {
  const response = await postTurn(sessionId, { client_turn_id: crypto.randomUUID(), ...body });
  const runId = response.headers.get("x-run-id") ?? "";
  const events = await readEvents(response);
  return { runId, events };
}

function final(events: Received[]): TurnEvent {
  const last = events[events.length - 1]?.data;
  check(last !== undefined && FINAL.has(last.event), `no final event: ${events.map((e) => e.data.event)}`);
  return last as TurnEvent;
}

function completed(events: Received[], what: string): void {
  const last = final(events);
  if (last.event === "TurnFailed") throw new Error(`${what}: TurnFailed ${last.error.code}: ${last.error.message}`);
  check(last.event === "TurnCompleted", `${what}: ended ${last.event}`);
  if (last.event === "TurnCompleted" && last.cost) moneyUnits(last.cost);
}

function ids(events: Received[]): number[] {
  return events.map((e) => Number(e.id));
}

function consecutive(events: Received[]): boolean {
  return ids(events).every((id, i) => id === i + 1);
}

async function slowAnswer(words: number, delayMs: number): Promise<void> {
  const text = Array.from({ length: words }, (_, i) => `word${i}`).join(" ");
  const r = await fetch(`${STANDIN}/_standin/script`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify([{ text, delay_ms: delayMs }]),
  });
  check(r.ok, `scripting the stand-in model: ${r.status}`);
}

// ------------------------------------------------------------------ the checks

const passed: string[] = [];

async function step(name: string, run: () => Promise<void>): Promise<void> {
  await run();
  passed.push(name);
  console.log(`ok  ${name}`);
}

async function main(): Promise<void> {
  let sessionId = "";

  await step("sessions: create, list, read, rename (the generated client, from the page's origin)", async () => {
    const created = await createSession({ body: { agent: "assistant", title: "ts check" } });
    check(created.response.status === 201 && created.data !== undefined, `createSession: ${created.response.status}`);
    sessionId = created.data?.id ?? "";
    const page = await listSessions({ query: { limit: 50 } });
    check((page.data?.items ?? []).some((s) => s.id === sessionId), "the new session is not listed");
    const renamed = await renameSession({ path: { session_id: sessionId }, body: { title: "renamed" } });
    check(renamed.data?.title === "renamed", "rename");
    const one = await getSession({ path: { session_id: sessionId } });
    check(one.data?.turn_running === false && one.data.cost !== undefined, "getSession");
  });

  await step("problem+json on a 4xx, typed Problem, readable cross-origin", async () => {
    const both = await createSession({ body: { agent: "assistant", team: "planner" } });
    const problem: Problem | undefined = both.error;
    check(both.response.status === 422 && problem?.code === "invalid-input", `createSession(agent+team): ${both.response.status}`);
    check((both.response.headers.get("content-type") ?? "").startsWith("application/problem+json"), "not problem+json");
    const missing = await getSession({ path: { session_id: crypto.randomUUID() } });
    check(missing.response.status === 404 && missing.error?.code === "not-found", "someone else's session: 404");
    // a stream route answers its problem before any event
    try {
      await readEvents(await postTurn(sessionId, { message: "   " }));
      throw new Error("a blank message without a photo streamed");
    } catch (e) {
      check(e instanceof ProblemError && e.status === 422 && e.problem.code === "invalid-input", String(e));
    }
  });

  await step("CORS: the preflight of POST /sessions/{id}/turns from the page's origin", async () => {
    const r = await fetch(`${API}/sessions/${sessionId}/turns`, {
      method: "OPTIONS",
      headers: { Origin: ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type" },
    });
    check(r.status === 204 && r.headers.get("access-control-allow-origin") === ORIGIN, `preflight: ${r.status}`);
    const allowed = (r.headers.get("access-control-allow-headers") ?? "").toLowerCase();
    check(allowed.includes("authorization") && allowed.includes("content-type"), `allowed headers: ${allowed}`);
    check((r.headers.get("access-control-allow-methods") ?? "").includes("POST"), "POST not allowed");
  });

  await step("a turn with a photo and a caption: every event typed, X-Run-Id readable", async () => {
    const { runId, events } = await turn(sessionId, {
      message: "What is in this photo?", images: [{ data: PNG, mime_type: "image/png" }],
    });
    check(/^[0-9a-f-]{36}$/.test(runId) && events[0]?.data.run_id === runId, `X-Run-Id ${runId}`);
    check(consecutive(events), `ids ${ids(events)}`);
    completed(events, "photo turn");
  });

  await step("a turn with a photo and no text, and one whose text is blank", async () => {
    completed((await turn(sessionId, { images: [{ data: PNG }] })).events, "photo alone");
    completed((await turn(sessionId, { message: "   ", images: [{ data: PNG }] })).events, "photo and blank text");
  });

  await step("an upload: POST /uploads, the file to S3, then a turn naming it (and no text)", async () => {
    const bytes = Uint8Array.from(atob(PNG), (c) => c.charCodeAt(0));
    const upload = await createUpload({ body: { mime_type: "image/png", size: bytes.length } });
    check(upload.response.status === 201 && upload.data !== undefined, `createUpload: ${upload.response.status}`);
    const { url, fields, upload_id } = upload.data!;
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    form.append("file", new Blob([bytes], { type: "image/png" }), "photo.png");
    const stored = await fetch(url, { method: "POST", body: form });
    check(stored.status === 204, `the presigned POST: ${stored.status}`);
    const { events } = await turn(sessionId, { images: [{ upload_id }] });
    completed(events, "upload turn");
  });

  await step("a cut stream resumed with Last-Event-ID (the generated streamTurnEvents): no gap, no repeat", async () => {
    await slowAnswer(40, 25);
    const cut = new AbortController();
    const response = await postTurn(sessionId, { message: "tell me a story", client_turn_id: crypto.randomUUID() }, cut);
    const runId = response.headers.get("x-run-id") ?? "";
    const before = await readEvents(response, (events) => events.length === 4, cut);
    check(before.length === 4, `before the cut: ${before.length}`);
    const after: TurnEvent[] = [];
    let lastId = before[before.length - 1]!.id;
    const { stream } = await streamTurnEvents({
      path: { session_id: sessionId, run_id: runId },
      headers: { "Last-Event-ID": lastId },
      sseMaxRetryAttempts: 1,
      onSseEvent: (event) => { lastId = event.id ?? lastId; },
    });
    for await (const data of stream) {
      if (!data) continue;  // typed TurnEvent | void: the route's 204 has no event
      after.push(data);
      if (FINAL.has(data.event)) break;
    }
    check(Number(lastId) === before.length + after.length, `ids: ${before.length} + ${after.length} ending at ${lastId}`);
    check(after[after.length - 1]?.event === "TurnCompleted", `resumed to ${after[after.length - 1]?.event}`);
    const text = [...before.map((e) => e.data), ...after]
      .map((e) => (e.event === "RunContent" ? e.content ?? "" : "")).join("");
    check(text.includes("word0") && text.includes("word39"), "the answer is not whole");
    // at the final event there is nothing more: 204
    const ended = await fromPage(`${API}/sessions/${sessionId}/turns/${runId}/events`, {
      headers: { Authorization: `Bearer ${TOKEN}`, "Last-Event-ID": lastId },
    });
    check(ended.status === 204, `a resume at the final event: ${ended.status}`);
  });

  await step("a browser's EventSource resumes a cut stream with a resume token, and a 204 stops it", async () => {
    await slowAnswer(40, 25);
    const cut = new AbortController();
    const response = await postTurn(sessionId, { message: "another story", client_turn_id: crypto.randomUUID() }, cut);
    const runId = response.headers.get("x-run-id") ?? "";
    const before = await readEvents(response, (events) => events.length === 3, cut);
    const issued = await createResumeToken({ path: { session_id: sessionId, run_id: runId } });
    check(issued.response.status === 201 && issued.data !== undefined, `createResumeToken: ${issued.response.status}`);
    const query = new URLSearchParams({ token: issued.data!.token, after: before[before.length - 1]!.id });
    // an EventSource sends no Authorization header: the token is its identity (and the browser adds Origin)
    const source = new EventSource(`${API}/sessions/${sessionId}/turns/${runId}/events?${query}`, { fetch: fromPage });
    const names = await eventNames();
    const resumed = await new Promise<Received[]>((resolve, reject) => {
      const events: Received[] = [];
      for (const name of names) {
        source.addEventListener(name, (message) => {
          events.push({ id: message.lastEventId, data: JSON.parse(message.data) as TurnEvent });
        });
      }
      source.onerror = (error) => {
        // after the final event the EventSource reconnects with Last-Event-ID; the 204 ends it for good
        if (source.readyState === EventSource.CLOSED && error.code === 204) resolve(events);
        else if (source.readyState === EventSource.CLOSED) reject(new Error(`EventSource failed: ${error.message}`));
      };
    });
    check(source.readyState === EventSource.CLOSED, "the EventSource is still open");
    const all = [...before, ...resumed];
    check(consecutive(all), `ids ${ids(all)}`);
    completed(all, "the resumed turn");
    // a token is refused once tampered with
    const forged = await fromPage(`${API}/sessions/${sessionId}/turns/${runId}/events?token=${issued.data!.token}x`);
    check(forged.status === 401 && ((await forged.json()) as Problem).code === "unauthorized", `forged: ${forged.status}`);
  });

  await step("the stop button: a cancelled turn ends RunCancelled, TurnCancelled", async () => {
    await slowAnswer(200, 50);
    const cut = new AbortController();
    const response = await postTurn(sessionId, { message: "a long story", client_turn_id: crypto.randomUUID() }, cut);
    const runId = response.headers.get("x-run-id") ?? "";
    let stop: ReturnType<typeof cancelTurn> | undefined;
    const events = await readEvents(response, (received) => {
      if (stop === undefined && received.some((e) => e.data.event === "RunContent")) {
        stop = cancelTurn({ path: { session_id: sessionId, run_id: runId } });  // the stop button
      }
      return false;
    });
    const stopped = await stop;
    check(stopped?.response.status === 202 && stopped.data?.status === "cancelling", "cancelTurn");
    const names = events.map((e) => e.data.event);
    check(names.slice(-2).join(",") === "RunCancelled,TurnCancelled", `ended ${names.slice(-3)}`);
    check(!names.includes("RunCompleted"), "a stopped run sent RunCompleted");
    const last = final(events);
    if (last.event === "TurnCancelled" && last.cost) moneyUnits(last.cost);
  });

  await step("an acting tool: a turn pauses (TurnPaused), the typed decision (ApprovalsIn) streams the rest", async () => {
    const created = await createSession({ body: { agent: "assistant" } });
    const reminders = created.data?.id ?? "";
    const paused = await turn(reminders, { message: "Remind me to call mom at 18:00" });
    const last = paused.events[paused.events.length - 1];
    if (last?.data.event !== "TurnPaused") throw new Error(`the turn ended ${last?.data.event}, not TurnPaused`);
    check(last.data.pending.length === 1 && last.data.pending[0].tool === "set_reminder", "one pending set_reminder");
    const shown = await getSession({ path: { session_id: reminders } });
    check(shown.data?.turn_paused?.run_id === paused.runId, "GET /sessions/{id} shows the paused turn");
    const body: ApprovalsIn = {
      decisions: last.data.pending.map((call) => ({ tool_call_id: call.tool_call_id, approved: false, note: "not now" })),
    };
    const decide = () => fromPage(`${API}/sessions/${reminders}/turns/${paused.runId}/approvals`, {
      method: "POST", body: JSON.stringify(body),
      headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json", Accept: "text/event-stream" },
    });
    const rest = await readEvents(await decide());
    completed(rest, "the decision");
    check(Number(rest[0].id) === Number(last.id) + 1, `the decision's ids follow the pause's: ${ids(rest)}`);
    try {
      await readEvents(await decide());
      throw new Error("a second decision streamed");
    } catch (e) {
      check(e instanceof ProblemError && e.status === 409 && e.problem.code === "turn-not-paused", String(e));
    }
  });

  await step("/usage: every amount a decimal string, the days adding up to the totals exactly", async () => {
    const usage = await getUsage({});
    check(usage.data !== undefined, `getUsage: ${usage.response.status}`);
    const { totals, by_day, by_agent, budget } = usage.data!;
    const [usd, zar] = moneyUnits(totals.cost);
    check(usd > 0n && zar > 0n, "nothing was spent");
    const days = by_day.map((d) => moneyUnits(d.cost)).reduce(([a, b], [c, d]) => [a + c, b + d], [0n, 0n]);
    check(days[0] === usd && days[1] === zar, `by_day ${days} != totals ${[usd, zar]}`);
    const agents = by_agent.map((a) => moneyUnits(a.cost)).reduce(([a, b], [c, d]) => [a + c, b + d], [0n, 0n]);
    check(agents[0] === usd && agents[1] === zar, "by_agent does not add up");
    if (budget) [budget.spent_zar, budget.remaining_zar, budget.monthly_budget_zar].forEach(units);
  });
}

main().then(
  () => console.log(`all ${passed.length} checks passed`),
  (error: unknown) => {
    console.error(`FAILED after ${passed.length} check(s): ${error instanceof Error ? error.stack ?? error.message : error}`);
    process.exitCode = 1;
  },
);
