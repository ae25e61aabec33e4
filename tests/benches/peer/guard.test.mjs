// The loopback guard's decisions, and that an installed guard refuses a
// vendor host before any socket or lookup exists. No packet leaves: a
// refusal throws synchronously inside the call that would have connected.
// Run by `node --test` (tests/it/peer_guard.rs runs it in the suite).

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import dns from 'node:dns';
import test from 'node:test';

import { guardInstalled, installGuard, refusals, refuses, selfCheck } from './guard.mjs';

test('the decision allows loopback literals only', () => {
  assert.deepEqual(selfCheck(), { refused: 14, allowed: 5 });
  assert.equal(refuses('127.0.0.1'), false);
  assert.equal(refuses('localhost'), true, 'a name needs a lookup');
  assert.equal(refuses('r1-api.dotdigital.com'), true);
  assert.equal(refuses('128.0.0.1'), true);
  assert.equal(refuses('::ffff:10.0.0.1'), true);
});

test('an installed guard refuses before connecting or looking up', () => {
  const seen = [];
  installGuard({ onRefuse: (entry) => seen.push(entry) });
  assert.equal(guardInstalled(), true);
  assert.throws(() => net.connect({ host: 'r1-api.dotdigital.com', port: 443 }), {
    code: 'ELOOPBACKGUARD',
  });
  assert.throws(() => http.get('http://r2-api.dotdigital.com/v2/data-fields'), {
    code: 'ELOOPBACKGUARD',
  });
  assert.throws(() => dns.lookup('api.segment.io', () => {}), { code: 'ELOOPBACKGUARD' });
  assert.throws(() => net.connect({ path: '/tmp/peer-guard.sock' }), { code: 'ELOOPBACKGUARD' });
  assert.equal(seen.length, 4);
  assert.deepEqual(
    refusals().map((r) => r.host),
    ['r1-api.dotdigital.com', 'r2-api.dotdigital.com', 'api.segment.io', 'unix:/tmp/peer-guard.sock'],
  );
});

test('an installed guard lets loopback through', async () => {
  installGuard();
  const server = http.createServer((_, res) => res.end('ok'));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  const body = await new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/' }, (res) => {
        let text = '';
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve(text));
      })
      .on('error', reject);
  });
  server.close();
  assert.equal(body, 'ok');
});
