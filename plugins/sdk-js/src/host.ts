// What a connector may ask of the host: HTTP through the egress policy, and
// log lines. In a component these are the WIT imports (`component.ts`); in
// unit tests, a `MockHost` (`testing.ts`). Connector code only sees `Context`.

import type { HttpError, Level, WitRequest, WitResponse } from './wit';

/** The host's services, as the component's imports offer them. */
export interface Host {
  /** Sends one request; throws an `HttpRefused` when it could not be made. */
  send(request: WitRequest): WitResponse;
  log(level: Level, message: string, fields: Array<[string, string]>): void;
  /** The integration's small key-value cache (access tokens, say). */
  cacheGet(key: string): string | undefined;
  cacheSet(key: string, value: string, ttlSeconds: number): void;
}

/** A request the host could not complete: `error` says how (the WIT's `http-error`). */
export class HttpRefused extends Error {
  readonly error: HttpError;

  constructor(error: HttpError) {
    super(describeHttpError(error));
    this.name = 'HttpRefused';
    this.error = error;
  }

  /** Network trouble may pass; a policy denial or a malformed request will not. */
  get retryable(): boolean {
    return this.error.tag === 'timeout' || this.error.tag === 'connection';
  }
}

/** `request timed out`, `request denied: …`: the same words as the Rust SDK. */
export function describeHttpError(error: HttpError): string {
  switch (error.tag) {
    case 'denied':
      return `request denied: ${error.val}`;
    case 'timeout':
      return 'request timed out';
    case 'connection':
      return `connection failed: ${error.val}`;
    case 'too-large':
      return `response larger than ${error.val} bytes`;
    case 'invalid-request':
      return `invalid request: ${error.val}`;
  }
}

/** Log fields: `{status: 429}` or `[['status', '429']]`. */
export type Fields = Record<string, string | number | boolean> | Array<[string, string]>;

function fieldList(fields: Fields | undefined): Array<[string, string]> {
  if (fields === undefined) return [];
  if (Array.isArray(fields)) return fields;
  return Object.entries(fields).map(([k, v]) => [k, String(v)]);
}

/**
 * What a connector's functions receive: the host's HTTP, log and cache.
 * Never log a secret: the host masks the config's secret values where it
 * finds them (log lines included), but a value too short to mask safely, or
 * one transformed (encoded, hashed), passes.
 */
export class Context {
  readonly host: Host;

  constructor(host: Host) {
    this.host = host;
  }

  /**
   * The integration's cache: a value kept by the host for this integration
   * for up to `ttlSeconds` (an OAuth token until it expires, say), shared by
   * its calls; `undefined` when absent or expired. Not durable.
   */
  readonly cache = {
    get: (key: string): string | undefined => this.host.cacheGet(key),
    set: (key: string, value: string, ttlSeconds: number): void => this.host.cacheSet(key, value, ttlSeconds),
  };

  /** The raw WIT call; `Request.send(ctx)` is the usual way. */
  sendRaw(request: WitRequest): WitResponse {
    return this.host.send(request);
  }

  log(level: Level, message: string, fields?: Fields): void {
    this.host.log(level, message, fieldList(fields));
  }
  debug(message: string, fields?: Fields): void {
    this.log('debug', message, fields);
  }
  info(message: string, fields?: Fields): void {
    this.log('info', message, fields);
  }
  warn(message: string, fields?: Fields): void {
    this.log('warn', message, fields);
  }
  error(message: string, fields?: Fields): void {
    this.log('error', message, fields);
  }
}
