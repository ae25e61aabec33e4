import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Request, Response, classifyStatus, encodeComponent, failureFromResponse, retryAfterMs } from '../src/index';

const answer = (status: number, headers: Array<[string, string]> = []) =>
  new Response({ status, headers, body: new Uint8Array() });

test('statuses are classified as the Rust SDK classifies them', () => {
  for (const status of [200, 201, 204, 299]) assert.equal(classifyStatus(status, []).kind, 'success');
  for (const status of [408, 425, 429, 500, 502, 503, 504, 599]) assert.equal(classifyStatus(status, []).kind, 'retryable');
  for (const status of [301, 400, 401, 403, 404, 409, 422, 600]) assert.equal(classifyStatus(status, []).kind, 'permanent');
});

test('Retry-After is read in seconds, then X-RateLimit-Reset as a wait or an epoch', () => {
  assert.equal(retryAfterMs([['Retry-After', '30']]), 30_000);
  assert.equal(retryAfterMs([['retry-after', ' 1.5 ']]), 1_500);
  assert.equal(retryAfterMs([['Retry-After', 'soon']]), undefined);
  assert.equal(retryAfterMs([['Retry-After', '-1']]), undefined);
  assert.equal(retryAfterMs([['X-RateLimit-Reset', '12']]), 12_000);
  const now = 1_800_000_000_000;
  assert.equal(retryAfterMs([['X-RateLimit-Reset', '1800000060']], now), 60_000);
  assert.equal(retryAfterMs([['X-RateLimit-Reset', '1700000000']], now), 0);
  assert.equal(retryAfterMs([['Retry-After', '5'], ['X-RateLimit-Reset', '99']]), 5_000);
  assert.equal(retryAfterMs([]), undefined);
});

test('a failed answer becomes a classified outcome with the hint in bigint milliseconds', () => {
  assert.deepEqual(failureFromResponse(answer(429, [['Retry-After', '30']]), 'rate limited'), {
    tag: 'failed',
    val: { retryable: true, retryAfterMs: 30_000n, message: 'HTTP 429: rate limited' },
  });
  assert.deepEqual(failureFromResponse(answer(400)), { tag: 'failed', val: { retryable: false, message: 'HTTP 400' } });
});

test('header() replaces, addHeader() appends, json() sets only Content-Type', () => {
  const request = Request.post('https://api.example.com/x')
    .header('Authorization', 'Bearer a')
    .bearer('b')
    .addHeader('Accept', 'text/plain')
    .addHeader('Accept', 'application/json')
    .json({ a: 1 })
    .timeoutMs(5_000)
    .toWit();
  assert.deepEqual(request.headers, [
    ['Authorization', 'Bearer b'],
    ['Accept', 'text/plain'],
    ['Accept', 'application/json'],
    ['Content-Type', 'application/json'],
  ]);
  assert.equal(new TextDecoder().decode(request.body), '{"a":1}');
  assert.equal(request.timeoutMs, 5_000);
  assert.equal(request.method, 'post');
});

test('basic auth is base64 of user:password', () => {
  const headers = Request.get('https://x.example').basicAuth('user', 'pässword').toWit().headers;
  assert.deepEqual(headers, [['Authorization', `Basic ${Buffer.from('user:pässword').toString('base64')}`]]);
});

test('a path segment is percent-encoded byte by byte', () => {
  assert.equal(encodeComponent('ann@example.com'), 'ann%40example.com');
  assert.equal(encodeComponent('a b/é~'), 'a%20b%2F%C3%A9~');
  assert.equal(encodeComponent('A-z_0.9'), 'A-z_0.9');
});

test('a response reads its headers case-insensitively and cuts long bodies', () => {
  const body = new TextEncoder().encode('x'.repeat(300));
  const response = new Response({ status: 200, headers: [['Content-Type', 'text/plain']], body });
  assert.equal(response.header('content-type'), 'text/plain');
  assert.equal(response.ok, true);
  assert.equal(response.textSnippet(10), `${'x'.repeat(10)}…`);
});
