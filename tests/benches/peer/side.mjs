// One side of the peer benchmark in its own process, so its CPU time is its
// own (tests/benches/peer.rs reads /proc/<pid>/stat): `segment` (Segment's
// actions engine running its Dotdigital action) or `plain` (a keep-alive
// client PATCHing the mock directly). Talks to the runner by lines:
//   stdout ← {"peer":"ready"}  (modules loaded, nothing sent yet)
//   stdin  → go
//   stdout ← {"peer":"done","result":{…}}
//   stdout ← {"peer":"refused","what":…,"host":…}  (the loopback guard
//            refused a connection: the runner aborts the whole run)
//   stdout ← {"peer":"error","message":…}
// Anything else on stdout (an engine's own logging) is not a message.
//
// The guard is installed before anything else is loaded.

import { installGuard, guardInstalled, refuses, refusals } from './guard.mjs';

installGuard({
  onRefuse: (entry) => send({ peer: 'refused', ...entry }),
});

/** Writes one message line; `then` runs once it is all written. */
function send(message, then) {
  process.stdout.write(`${JSON.stringify(message)}\n`, then);
}

import { createRequire } from 'node:module';
import http from 'node:http';
import { performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);

const mode = process.argv[2];
const MOCK = process.env.PEER_MOCK_URL; // http://127.0.0.1:PORT
const EVENTS = Number(process.env.PEER_EVENTS);
const IN_FLIGHT = Number(process.env.PEER_IN_FLIGHT ?? 8);
// Events per second to offer, spread evenly; unset: as fast as it goes.
const RATE = process.env.PEER_RATE ? Number(process.env.PEER_RATE) : null;
const USER_PREFIX = process.env.PEER_USER_PREFIX ?? 'user';
const API_USER = 'demo-apiuser@apiconnector.com';
const API_PASSWORD = 'demo-password';
// The region Segment's settings must name (its settings schema allows only
// the three real regions); every request to it is sent to MOCK instead.
const VENDOR_ORIGIN = 'https://r1-api.dotdigital.com';

if (!guardInstalled()) throw new Error('the loopback guard is not installed');
if (!refuses(new URL(VENDOR_ORIGIN).hostname)) throw new Error('the loopback guard would let the vendor host through');
const mockUrl = new URL(MOCK);
if (refuses(mockUrl.hostname)) throw new Error(`the mock ${MOCK} is not on loopback`);
if (!(EVENTS > 0)) throw new Error('PEER_EVENTS must be a positive number');
if (RATE !== null && !(RATE > 0)) throw new Error('PEER_RATE must be a positive number');

const users = Array.from({ length: EVENTS }, (_, i) => `${USER_PREFIX}-${String(i).padStart(6, '0')}@example.com`);

/**
 * Runs `deliver(i)` for every user, IN_FLIGHT at once (paced at RATE when
 * set: event i is not sent before start + i / RATE); times each one from
 * the moment it is sent to its answer.
 */
async function drive(deliver) {
  const latencies = new Array(EVENTS);
  const ok = new Array(EVENTS).fill(false);
  const errors = [];
  let next = 0;
  let firstStart = Infinity;
  let lastEnd = 0;
  const start = performance.now();
  async function worker() {
    for (;;) {
      const i = next++;
      if (i >= EVENTS) return;
      if (RATE !== null) {
        const wait = start + (1000 * i) / RATE - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
      const t0 = performance.now();
      if (t0 < firstStart) firstStart = t0;
      try {
        await deliver(i);
        ok[i] = true;
      } catch (error) {
        if (errors.length < 5) errors.push(String(error?.message ?? error));
      }
      const t1 = performance.now();
      latencies[i] = t1 - t0;
      if (t1 > lastEnd) lastEnd = t1;
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const delivered = ok.filter(Boolean).length;
  return {
    events: EVENTS,
    delivered,
    failed: EVENTS - delivered,
    errors,
    elapsed_ms: lastEnd - firstStart,
    // Latencies of the delivered events only, in ms.
    latencies_ms: latencies.filter((_, i) => ok[i]),
  };
}

async function segmentSide() {
  // Segment's own runtime (@segment/actions-core) and its Dotdigital
  // destination, loaded directly (the package index would load every one of
  // its destinations).
  const core = require('@segment/actions-core');
  const coreDir = require.resolve('@segment/actions-core').replace(/index\.js$/, '');
  const destinationsDir = require.resolve('@segment/action-destinations').replace(/index\.js$/, '');
  const definition = require(`${destinationsDir}destinations/dotdigital/index.js`).default;
  // actions-core sends every request through its fetch module
  // (cross-fetch → node-fetch); its request client reads `fetch.default` at
  // each call. The rewrite maps the vendor origin to the mock and leaves
  // every other URL alone (which the guard then refuses).
  const fetchModule = require(`${coreDir}fetch.js`);
  const realFetch = fetchModule.default;
  const { Request } = fetchModule;
  let requests = 0;
  let rewritten = 0;
  fetchModule.default = (input, init) => {
    requests++;
    const request = input instanceof Request ? input : new Request(input, init);
    const url = new URL(request.url);
    if (url.origin === VENDOR_ORIGIN) {
      rewritten++;
      return realFetch(new Request(`${mockUrl.origin}${url.pathname}${url.search}`, request));
    }
    return realFetch(request);
  };
  const destination = new core.Destination(definition);
  const settings = {
    api_host: VENDOR_ORIGIN,
    username: API_USER,
    password: API_PASSWORD,
    subscription: {
      partnerAction: 'addContactToList',
      name: 'Add or Update Contact',
      enabled: true,
      subscribe: 'type = "track"',
      mapping: {
        channelIdentifier: 'email',
        emailIdentifier: { '@path': '$.properties.email' },
        dataFields: { NEWSLETTER: { '@path': '$.properties.newsletter' } },
      },
    },
  };
  const events = users.map((email, i) => ({
    type: 'track',
    event: 'Consent Updated',
    messageId: `ev-${email}`,
    userId: email,
    timestamp: '2026-11-23T10:00:00.000Z',
    properties: { email, newsletter: true },
  }));
  send({ peer: 'ready' });
  await go();
  const result = await drive(async (i) => {
    // A failed request throws; an event the engine did not run (not
    // subscribed, a subscription it could not read) is answered with a
    // result that is not 'Action Executed': only that one counts.
    const results = await destination.onEvent(events[i], settings);
    if (!(results ?? []).some((r) => r?.output === 'Action Executed')) {
      throw new Error(`the action did not run: ${JSON.stringify(results?.map((r) => r?.output ?? r?.error))}`);
    }
  });
  return { ...result, requests, rewritten };
}

async function plainSide() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  const auth = `Basic ${Buffer.from(`${API_USER}:${API_PASSWORD}`).toString('base64')}`;
  const body = Buffer.from(JSON.stringify({ dataFields: { NEWSLETTER: true } }));
  let requests = 0;
  const patch = (email) =>
    new Promise((resolve, reject) => {
      requests++;
      const req = http.request(
        {
          host: mockUrl.hostname,
          port: mockUrl.port,
          method: 'PATCH',
          path: `/contacts/v3/email/${encodeURIComponent(email)}?merge-option=overwrite`,
          agent,
          headers: {
            authorization: auth,
            'content-type': 'application/json',
            'content-length': body.length,
          },
        },
        (res) => {
          res.resume();
          res.on('end', () =>
            res.statusCode >= 200 && res.statusCode < 300
              ? resolve()
              : reject(new Error(`the mock answered ${res.statusCode}`)),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  send({ peer: 'ready' });
  await go();
  const result = await drive((i) => patch(users[i]));
  agent.destroy();
  return { ...result, requests };
}

/** Resolves when the runner writes `go` on stdin. */
function go() {
  return new Promise((resolve, reject) => {
    let buffered = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', function onData(chunk) {
      buffered += chunk;
      if (buffered.split('\n').some((line) => line.trim() === 'go')) {
        process.stdin.off('data', onData);
        process.stdin.pause();
        resolve();
      }
    });
    process.stdin.on('end', () => reject(new Error('the runner closed stdin before go')));
  });
}

// Bounded: it exits by itself after PEER_MAX_SECONDS whatever happens.
setTimeout(() => {
  console.error(`side ${mode}: gave up after ${process.env.PEER_MAX_SECONDS ?? 600} s`);
  process.exit(3);
}, 1000 * Number(process.env.PEER_MAX_SECONDS ?? 600)).unref();

try {
  const result = mode === 'segment' ? await segmentSide() : mode === 'plain' ? await plainSide() : null;
  if (result === null) throw new Error(`unknown side ${mode}`);
  result.refused = refusals();
  // The result line is larger than a pipe's buffer: exit once it is out.
  send({ peer: 'done', result }, () => process.exit(0));
} catch (error) {
  send({ peer: 'error', message: String(error?.stack ?? error), refused: refusals() }, () =>
    process.exit(2),
  );
}
