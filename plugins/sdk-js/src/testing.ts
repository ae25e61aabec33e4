// Unit tests without a host: a `MockHost` that answers requests by method
// and URL (as cassettes match them) and records what was sent, and the
// connector's entry points called as the host would call them.
//
//   const host = new MockHost().on('PUT', 'https://api.example.com/v1/contacts/ann', 201);
//   const [outcome] = deliverWith(acme, host, CONFIG, [record('ann', {newsletter: true})]);

import { CheckFailed } from './connection';
import { type AnyConnector, checkRules, deliver, parseConfig } from './connector';
import { Context, type Host, HttpRefused } from './host';
import { byPath, schemaProblems, urlProblems } from './validate';
import type { ConsentRecord, HttpError, Level, Outcome, ValidationProblem, Value, WitRequest, WitResponse } from './wit';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A request the mock received, with its body readable. */
export interface SentRequest extends WitRequest {
  /** The body as text (empty without one). */
  text: string;
  /** The body parsed as JSON; throws when it is not. */
  json(): unknown;
  /** The first header of that name (case-insensitive). */
  header(name: string): string | undefined;
}

type Answer = { response: WitResponse } | { error: HttpError };

/** What `on()` and `respond()` take as an answer body: text, bytes or JSON. */
export type Body = string | Uint8Array | object;

function answer(status: number, body: Body = '', headers: Record<string, string> = {}): Answer {
  const isJson = typeof body === 'object' && !(body instanceof Uint8Array);
  const bytes = typeof body === 'string' ? encoder.encode(body) : isJson ? encoder.encode(JSON.stringify(body)) : body;
  const list = Object.entries(headers);
  if (isJson && !list.some(([n]) => n.toLowerCase() === 'content-type')) list.push(['content-type', 'application/json']);
  return { response: { status, headers: list, body: bytes } };
}

/**
 * A host for unit tests. Routes (`on`) answer every request of their
 * method and URL, the last one set winning; answers queued with `respond`
 * go, in order, to requests no route matches. A request nothing answers
 * throws, naming it and what the mock knows.
 */
export class MockHost implements Host {
  readonly requests: SentRequest[] = [];
  readonly logs: Array<{ level: Level; message: string; fields: Array<[string, string]> }> = [];
  private readonly routes: Array<{ method: string; url: string; answer: Answer }> = [];
  private readonly queue: Answer[] = [];

  /** Answers `method url` with `status`, `body` and `headers`, every time. */
  on(method: string, url: string, status: number, body?: Body, headers?: Record<string, string>): this {
    this.routes.unshift({ method: method.toLowerCase(), url, answer: answer(status, body, headers) });
    return this;
  }

  /** Makes `method url` fail as the host would (`{tag: 'timeout'}`, `{tag: 'denied', val: '…'}`). */
  fail(method: string, url: string, error: HttpError): this {
    this.routes.unshift({ method: method.toLowerCase(), url, answer: { error } });
    return this;
  }

  /** Queues an answer for the next request no route matches. */
  respond(status: number, body?: Body, headers?: Record<string, string>): this {
    this.queue.push(answer(status, body, headers));
    return this;
  }

  send(request: WitRequest): WitResponse {
    const body = request.body ?? new Uint8Array();
    const text = decoder.decode(body);
    this.requests.push({
      ...request,
      text,
      json: () => JSON.parse(text),
      header: (name) => request.headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1],
    });
    const route = this.routes.find((r) => r.method === request.method && r.url === request.url);
    const found = route?.answer ?? this.queue.shift();
    if (!found) {
      const known = this.routes.map((r) => `${r.method.toUpperCase()} ${r.url}`);
      throw new Error(
        `MockHost: no answer for ${request.method.toUpperCase()} ${request.url}` +
          (known.length ? `; routes: ${known.join(', ')}` : '; no route and no queued answer'),
      );
    }
    if ('error' in found) throw new HttpRefused(found.error);
    return found.response;
  }

  log(level: Level, message: string, fields: Array<[string, string]>): void {
    this.logs.push({ level, message, fields });
  }

  /** The integration cache's entries, with the TTL each was set with (never expired here). */
  readonly cache = new Map<string, { value: string; ttlSeconds: number }>();

  cacheGet(key: string): string | undefined {
    return this.cache.get(key)?.value;
  }

  cacheSet(key: string, value: string, ttlSeconds: number): void {
    this.cache.set(key, { value, ttlSeconds });
  }

  /** A `Context` on this host, to call a connector's own functions directly. */
  context(): Context {
    return new Context(this);
  }
}

/** A record as the host builds it: `record('ann@example.com', {consents_purposes_newsletter_enabled: true})`. */
export function record(
  key: string,
  properties: Record<string, string | number | boolean | null>,
  keyName = 'organization_user_id',
): ConsentRecord {
  const value = (v: string | number | boolean | null): Value =>
    v === null
      ? { tag: 'null' }
      : typeof v === 'boolean'
        ? { tag: 'boolean', val: v }
        : typeof v === 'number'
          ? { tag: 'number', val: v }
          : { tag: 'text', val: v };
  return {
    keyName,
    key,
    properties: Object.entries({ [keyName]: key, ...properties }).map(([name, v]) => ({ name, value: value(v) })),
    metadata: { stateVersion: 1n, updatedAt: '2026-01-01T00:00:00Z', extra: [] },
  };
}

function text(config: string | object): string {
  return typeof config === 'string' ? config : JSON.stringify(config);
}

/**
 * Every problem the host would find in `config`, in its order
 * (`host/src/integrations/check.rs`): the schema check, or, when it passes,
 * the connector's `check`; then the host's URL rule on the `format: uri`
 * fields neither flagged; all in path order.
 */
export function validateWith(connector: AnyConnector, config: string | object): ValidationProblem[] {
  const raw = text(config);
  const parsed = parseConfig(raw);
  if ('problems' in parsed) return parsed.problems;
  const schema = connector.config.json;
  const found = schemaProblems(schema, parsed.config);
  const problems = found.length > 0 ? found : checkRules(connector, raw);
  const urls = urlProblems(schema, parsed.config).filter((p) => !problems.some((q) => q.path === p.path));
  return [...problems, ...urls].sort(byPath);
}

/** Delivers `records` through the connector with `host`; one outcome per record. */
export function deliverWith(
  connector: AnyConnector,
  host: Host,
  config: string | object,
  records: ConsentRecord[],
): Outcome[] {
  return deliver(connector, host, text(config), records);
}

/** The connection check's answer as the host gets it: `{ok: problems}` or `{err: message}`. */
export function checkConnectionWith(
  connector: AnyConnector,
  host: Host,
  config: string | object,
): { ok: ValidationProblem[] } | { err: string } {
  if (!connector.checkConnection) throw new Error(`${connector.about.typeId} has no checkConnection`);
  const parsed = parseConfig(text(config));
  if ('problems' in parsed) return { ok: parsed.problems };
  try {
    return { ok: connector.checkConnection(new Context(host), parsed.config) };
  } catch (e) {
    if (e instanceof CheckFailed) return { err: e.message };
    throw e;
  }
}
