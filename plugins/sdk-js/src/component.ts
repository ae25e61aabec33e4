// The component's side: the WIT imports become the `Host`, and a connector
// definition becomes the WIT exports. A connector's `src/index.ts` is
//
//   export const connector = exportConnector(acme);
//   export const connection = exportConnectionCheck(acme); // when it has checkConnection
//
// and `prefsync-js build` makes the component, with the `connection`
// export when the module has one. Unit tests never import this file: the
// `prefsync:` modules exist only inside a component.

import { get as cacheGet, set as cacheSet } from 'prefsync:connector/cache@0.1.3';
import { send } from 'prefsync:connector/http@0.1.3';
import { log } from 'prefsync:connector/log@0.1.3';
import { CheckFailed } from './connection';
import { type AnyConnector, checkRules, deliver, describe, parseConfig } from './connector';
import { Context, type Host, HttpRefused } from './host';
import type { ConfigProblem, ConsentRecord, Description, HttpError, Outcome, ValidationProblem } from './wit';

/** The host as the component's imports offer it. */
export const witHost: Host = {
  send(request) {
    try {
      return send(request);
    } catch (e) {
      // An imported function's `err` arrives as an exception with `payload`.
      const payload = (e as { payload?: HttpError }).payload;
      if (payload && typeof payload === 'object' && 'tag' in payload) throw new HttpRefused(payload);
      throw e;
    }
  },
  log,
  cacheGet,
  cacheSet,
};

/**
 * Runs `body`; an exception the connector did not catch is logged (its
 * message and stack, through the host's log, which masks secrets) before
 * the call traps, so `connector test` and the host's logs say what broke,
 * not only that the component trapped.
 */
function reported<T>(what: string, body: () => T): T {
  try {
    return body();
  } catch (e) {
    if (!(e instanceof CheckFailed)) {
      const error = e instanceof Error ? e : new Error(String(e));
      log('error', `uncaught ${error.name} in ${what}: ${error.message}`, [['stack', error.stack ?? '']]);
    }
    throw e;
  }
}

/** The WIT `connector` export for `definition`. */
export function exportConnector(definition: AnyConnector): {
  describe(): Description;
  validate(config: string): ValidationProblem[];
  deliver(config: string, batch: ConsentRecord[]): Outcome[];
} {
  return {
    describe: () => reported('describe', () => describe(definition)),
    validate: (config) => reported('validate', () => checkRules(definition, config)),
    deliver: (config, batch) => reported('deliver', () => deliver(definition, witHost, config, batch)),
  };
}

/** The WIT `connection` export for a definition with `checkConnection`. */
export function exportConnectionCheck(definition: AnyConnector): { check(config: string): ConfigProblem[] } {
  const checkConnection = definition.checkConnection;
  if (!checkConnection) {
    throw new Error(`${definition.about.typeId} has no checkConnection: do not export \`connection\``);
  }
  return {
    check(text) {
      const parsed = parseConfig(text);
      if ('problems' in parsed) return parsed.problems;
      try {
        return reported('checkConnection', () => checkConnection(new Context(witHost), parsed.config));
      } catch (e) {
        // `result<_, string>`'s err: an exception whose `payload` is the string.
        if (e instanceof CheckFailed) throw Object.assign(new Error(e.message), { payload: e.message });
        throw e;
      }
    },
  };
}
