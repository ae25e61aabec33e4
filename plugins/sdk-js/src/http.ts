// Requests, answers and how an answer is classified. The rules are the
// Rust SDK's (`prefsync_sdk::http`), so every connector, whatever its
// language, treats a status the same way: 2xx success; 408, 425, 429 and
// 5xx retryable, honouring `Retry-After`; any other status permanent.
// The connector classifies; the host schedules the retries.

import { type Context, HttpRefused } from './host';
import type { DeliveredKind, Method, Outcome, WitRequest, WitResponse } from './wit';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A request being built: `Request.put(url).bearer(key).json(body).send(ctx)`. */
export class Request {
  readonly method: Method;
  readonly url: string;
  private headers: Array<[string, string]> = [];
  private payload?: Uint8Array;
  private timeout?: number;

  constructor(method: Method, url: string) {
    this.method = method;
    this.url = url;
  }

  static get(url: string): Request {
    return new Request('get', url);
  }
  static post(url: string): Request {
    return new Request('post', url);
  }
  static put(url: string): Request {
    return new Request('put', url);
  }
  static patch(url: string): Request {
    return new Request('patch', url);
  }
  static delete(url: string): Request {
    return new Request('delete', url);
  }

  /** Sets a header, replacing any of the same name (case-insensitive). */
  header(name: string, value: string): this {
    const lower = name.toLowerCase();
    this.headers = this.headers.filter(([n]) => n.toLowerCase() !== lower);
    this.headers.push([name, value]);
    return this;
  }

  /** Adds a header even when one of that name is set (`Accept` lists, cookies). */
  addHeader(name: string, value: string): this {
    this.headers.push([name, value]);
    return this;
  }

  /** `Authorization: Bearer <token>`. */
  bearer(token: string): this {
    return this.header('Authorization', `Bearer ${token}`);
  }

  /** `Authorization: Basic base64(user:password)`. */
  basicAuth(user: string, password: string): this {
    return this.header('Authorization', `Basic ${base64(encoder.encode(`${user}:${password}`))}`);
  }

  /** A JSON body and `Content-Type: application/json` (nothing else). */
  json(body: unknown): this {
    return this.body('application/json', JSON.stringify(body));
  }

  /** A body of any type. */
  body(contentType: string, body: string | Uint8Array): this {
    this.header('Content-Type', contentType);
    this.payload = typeof body === 'string' ? encoder.encode(body) : body;
    return this;
  }

  /** The request's own timeout; the host caps it at its limit. */
  timeoutMs(ms: number): this {
    this.timeout = ms;
    return this;
  }

  /** The request as the WIT's `http.request`. */
  toWit(): WitRequest {
    return {
      method: this.method,
      url: this.url,
      headers: [...this.headers],
      body: this.payload,
      timeoutMs: this.timeout,
    };
  }

  /** Sends it through the host; throws `HttpRefused` when no answer came. */
  send(ctx: Context): Response {
    return new Response(ctx.sendRaw(this.toWit()));
  }
}

/** How a status is treated. */
export type StatusClass =
  | { kind: 'success' }
  | { kind: 'retryable'; retryAfterMs?: number }
  | { kind: 'permanent' };

/** An answer, with the helpers every connector needs. */
export class Response {
  readonly status: number;
  readonly headers: Array<[string, string]>;
  readonly body: Uint8Array;

  constructor(raw: WitResponse) {
    this.status = raw.status;
    this.headers = raw.headers;
    this.body = raw.body;
  }

  /** The first header of that name (case-insensitive). */
  header(name: string): string | undefined {
    const lower = name.toLowerCase();
    return this.headers.find(([n]) => n.toLowerCase() === lower)?.[1];
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  text(): string {
    return decoder.decode(this.body);
  }

  /** The body as JSON; throws a `SyntaxError` when it is not. */
  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }

  /** At most `max` characters of the body, for a message. */
  textSnippet(max = 200): string {
    const text = this.text();
    return text.length > max ? `${text.slice(0, max)}…` : text;
  }

  class(): StatusClass {
    return classifyStatus(this.status, this.headers);
  }
}

/** 2xx success; 408/425/429/5xx retryable with the hint; anything else permanent. */
export function classifyStatus(status: number, headers: Array<[string, string]>): StatusClass {
  if (status >= 200 && status < 300) return { kind: 'success' };
  if (status === 408 || status === 425 || status === 429 || (status >= 500 && status < 600)) {
    return { kind: 'retryable', retryAfterMs: retryAfterMs(headers) };
  }
  return { kind: 'permanent' };
}

/**
 * The wait the destination asks for, in milliseconds: `Retry-After` in
 * seconds first, then `X-RateLimit-Reset` as seconds to wait, or as a Unix
 * time when it is that large.
 */
export function retryAfterMs(headers: Array<[string, string]>, nowMs: number = Date.now()): number | undefined {
  const find = (name: string): number | undefined => {
    const raw = headers.find(([n]) => n.toLowerCase() === name)?.[1];
    if (raw === undefined || raw.trim() === '') return undefined;
    const value = Number(raw.trim());
    return Number.isFinite(value) && value >= 0 ? value : undefined;
  };
  const seconds = find('retry-after');
  if (seconds !== undefined) return Math.floor(seconds * 1000);
  const reset = find('x-ratelimit-reset');
  if (reset === undefined) return undefined;
  const EPOCH_THRESHOLD = 1e9;
  if (reset >= EPOCH_THRESHOLD) return Math.floor(Math.max(0, reset - nowMs / 1000) * 1000);
  return Math.floor(reset * 1000);
}

/** Delivered: `created`, `updated` or `unchanged`. */
export function delivered(kind: DeliveredKind): Outcome {
  return { tag: 'delivered', val: kind };
}

/** Deliberately not sent, with the reason. */
export function skipped(reason: string): Outcome {
  return { tag: 'skipped', val: reason };
}

/** A failure the same request may get past later (after `retryAfterMs`, if given). */
export function retryable(message: string, retryAfterMs?: number): Outcome {
  return {
    tag: 'failed',
    val: {
      retryable: true,
      retryAfterMs: retryAfterMs === undefined ? undefined : BigInt(Math.max(0, Math.floor(retryAfterMs))),
      message,
    },
  };
}

/** A failure that will not pass by trying again. */
export function permanent(message: string): Outcome {
  return { tag: 'failed', val: { retryable: false, message } };
}

/**
 * A non-2xx answer as a failed outcome, classified by status, with `detail`
 * (the API's error code, say) in the message: `HTTP 429: rate limited`.
 */
export function failureFromResponse(response: Response, detail = ''): Outcome {
  const message = detail === '' ? `HTTP ${response.status}` : `HTTP ${response.status}: ${detail}`;
  const cls = response.class();
  return cls.kind === 'retryable' ? retryable(message, cls.retryAfterMs) : permanent(message);
}

/** A request that got no answer, as an outcome: network trouble retryable, the rest not. */
export function failureFromRefusal(refused: HttpRefused, context: string): Outcome {
  const message = `${context}: ${refused.message}`;
  return refused.retryable ? retryable(message) : permanent(message);
}

/**
 * Sends `request` and turns a refusal into its outcome, so `deliver` reads
 * `const answer = trySend(ctx, req, 'acme'); if ('tag' in answer) return answer;`.
 */
export function trySend(ctx: Context, request: Request, context: string): Response | Outcome {
  try {
    return request.send(ctx);
  } catch (e) {
    if (e instanceof HttpRefused) return failureFromRefusal(e, context);
    throw e;
  }
}

/** Percent-encodes one URL path segment or query value (RFC 3986 unreserved kept). */
export function encodeComponent(raw: string): string {
  let out = '';
  for (const byte of encoder.encode(raw)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-_.~]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function base64(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const [a, b, c] = [bytes[i]!, bytes[i + 1], bytes[i + 2]];
    const n = (a << 16) | ((b ?? 0) << 8) | (c ?? 0);
    out += BASE64[(n >> 18) & 63]! + BASE64[(n >> 12) & 63]!;
    out += b === undefined ? '=' : BASE64[(n >> 6) & 63]!;
    out += c === undefined ? '=' : BASE64[n & 63]!;
  }
  return out;
}
