// The loopback guard: once installed, no outbound connection and no name
// lookup leaves this process unless its host is a loopback address literal
// (127.0.0.0/8, ::1). The check runs BEFORE any socket or DNS query exists,
// so a refused connection sends nothing at all. Segment's Dotdigital action
// names real Dotdigital hosts; this guard is what keeps the benchmark from
// ever reaching them, whatever the engine or its rewrite does.

import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { syncBuiltinESMExports } from 'node:module';

/** True when `host` is a loopback address literal: 127.0.0.0/8 or ::1. */
export function isLoopbackHost(host) {
  if (typeof host !== 'string' || host === '') return false;
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (net.isIPv4(h)) return h.split('.')[0] === '127';
  if (net.isIPv6(h)) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    const mapped = h.match(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/);
    return mapped !== null && net.isIPv4(mapped[1]) && mapped[1].split('.')[0] === '127';
  }
  // A name (even "localhost") would need a lookup: refused.
  return false;
}

/** The guard's decision: true when a connection to `host` is refused. */
export function refuses(host) {
  return !isLoopbackHost(host);
}

export class GuardRefusal extends Error {
  constructor(what, host) {
    super(`loopback guard: refused ${what} to ${JSON.stringify(host)} (only 127.0.0.0/8 and ::1 are allowed)`);
    this.name = 'GuardRefusal';
    this.code = 'ELOOPBACKGUARD';
    this.host = host;
  }
}

const state = { installed: false, refused: [], onRefuse: null };

/** Every refusal so far: [{what, host}]. */
export function refusals() {
  return state.refused.slice();
}

function refuse(what, host) {
  const entry = { what, host: String(host) };
  state.refused.push(entry);
  try {
    state.onRefuse?.(entry);
  } catch {
    // The refusal is thrown below whatever the listener does.
  }
  throw new GuardRefusal(what, host);
}

// The host of a net/tls connect call, in any of Node's argument forms.
// A path (Unix socket) or a missing host is refused: neither is needed here,
// and a missing host means "localhost", which is a name.
function hostOf(args) {
  let [first, second] = args;
  if (Array.isArray(first)) first = first[0]; // net's internal normalized form
  if (first !== null && typeof first === 'object') {
    if (first.path !== undefined && first.path !== null) return `unix:${first.path}`;
    return first.host ?? first.hostname ?? undefined;
  }
  if (typeof first === 'string' && !/^\d+$/.test(first)) return `unix:${first}`;
  return typeof second === 'string' ? second : undefined;
}

function checked(what, original) {
  const wrapped = function (...args) {
    const host = hostOf(args);
    if (refuses(host)) refuse(what, host);
    return original.apply(this, args);
  };
  wrapped.__loopbackGuard = true;
  return wrapped;
}

function checkedLookup(what, original) {
  const wrapped = function (hostname, ...rest) {
    if (refuses(hostname)) refuse(what, hostname);
    return original.call(this, hostname, ...rest);
  };
  wrapped.__loopbackGuard = true;
  return wrapped;
}

/**
 * Installs the guard in this process (idempotent). `onRefuse({what, host})`
 * is called on every refusal, before the refusal is thrown.
 */
export function installGuard({ onRefuse } = {}) {
  if (onRefuse) state.onRefuse = onRefuse;
  if (state.installed) return;
  // Every TCP connection from JavaScript ends in Socket.prototype.connect;
  // the functions above it are wrapped too, so the refusal comes first.
  net.Socket.prototype.connect = checked('a socket connection', net.Socket.prototype.connect);
  net.connect = checked('net.connect', net.connect);
  net.createConnection = checked('net.createConnection', net.createConnection);
  tls.connect = checked('tls.connect', tls.connect);
  // http.Agent took a reference to net.createConnection when it loaded.
  http.Agent.prototype.createConnection = checked(
    'http.Agent.createConnection',
    http.Agent.prototype.createConnection,
  );
  https.Agent.prototype.createConnection = checked(
    'https.Agent.createConnection',
    https.Agent.prototype.createConnection,
  );
  for (const target of [dns, dns.promises, dns.Resolver.prototype, dns.promises.Resolver.prototype]) {
    for (const name of Object.getOwnPropertyNames(target)) {
      if ((name === 'lookup' || name.startsWith('resolve') || name === 'lookupService') &&
          typeof target[name] === 'function') {
        target[name] = checkedLookup(`dns.${name}`, target[name]);
      }
    }
  }
  syncBuiltinESMExports();
  state.installed = true;
}

/** True when every entry point the guard wraps is wrapped. */
export function guardInstalled() {
  return (
    state.installed &&
    [
      net.Socket.prototype.connect,
      net.connect,
      net.createConnection,
      tls.connect,
      http.Agent.prototype.createConnection,
      https.Agent.prototype.createConnection,
      dns.lookup,
      dns.promises.lookup,
    ].every((f) => f.__loopbackGuard === true)
  );
}

/**
 * The unit check the runner makes before anything starts: the decision
 * refuses vendor and other names, and allows only loopback literals. Calls
 * the decision function only: no socket, no lookup. Throws on a failure.
 */
export function selfCheck() {
  const mustRefuse = [
    'r1-api.dotdigital.com',
    'r2-api.dotdigital.com',
    'r3-api.dotdigital.com',
    'api.segment.io',
    'localhost',
    'example.com',
    '10.0.0.1',
    '192.168.1.1',
    '8.8.8.8',
    '::',
    '::ffff:8.8.8.8',
    '',
    undefined,
    'unix:/tmp/x.sock',
  ];
  const mustAllow = ['127.0.0.1', '127.1.2.3', '::1', '[::1]', '::ffff:127.0.0.1'];
  for (const host of mustRefuse) {
    if (!refuses(host)) throw new Error(`loopback guard self-check: ${JSON.stringify(host)} was not refused`);
  }
  for (const host of mustAllow) {
    if (refuses(host)) throw new Error(`loopback guard self-check: ${JSON.stringify(host)} was refused`);
  }
  return { refused: mustRefuse.length, allowed: mustAllow.length };
}
