// The connection check's usual shape: one cheap authenticated request, its
// answer read as a verdict. The same rules as the Rust SDK's
// `prefsync_sdk::connection`.

import { type Context, HttpRefused } from './host';
import type { Request, Response } from './http';
import type { ValidationProblem } from './wit';

/** The check could not be made (unreachable, timeout, 5xx): the config may be right. */
export class CheckFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckFailed';
  }
}

/**
 * Sends `request` and reads the answer (`verdict`); a request that got no
 * answer is `unreachable`'s.
 */
export function probe(ctx: Context, request: Request, credentialPath: string): ValidationProblem[] {
  let response: Response;
  try {
    response = request.send(ctx);
  } catch (e) {
    if (e instanceof HttpRefused) return unreachable(e);
    throw e;
  }
  return verdict(response, credentialPath);
}

/**
 * 2xx accepted (no problem); 401 or 403 the credential at
 * `credentialPath` refused; 408, 425, 429 or 5xx the check could not be
 * made (throws `CheckFailed`); another 4xx a problem of the whole config.
 * Never quotes the body: it could echo a secret.
 */
export function verdict(response: Response, credentialPath: string): ValidationProblem[] {
  const cls = response.class();
  if (cls.kind === 'success') return [];
  if (response.status === 401 || response.status === 403) {
    return [{ path: credentialPath, message: `the destination refused it (HTTP ${response.status})` }];
  }
  if (cls.kind === 'retryable') {
    throw new CheckFailed(`the destination answered HTTP ${response.status}; try again later`);
  }
  return [{ path: '', message: `the destination refused the check (HTTP ${response.status})` }];
}

/**
 * A request with no answer: one the egress policy denied is a problem of
 * the config (it names a host the integration may not reach); a timeout or
 * a connection failure means the check could not be made.
 */
export function unreachable(refused: HttpRefused): ValidationProblem[] {
  if (refused.error.tag === 'denied') {
    return [{ path: '', message: `the host may not reach the destination: ${refused.error.val}` }];
  }
  throw new CheckFailed(`the destination could not be reached: ${refused.message}`);
}
