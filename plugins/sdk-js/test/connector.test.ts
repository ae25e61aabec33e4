import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  type Context,
  type Infer,
  Request,
  defineConnector,
  delivered,
  describe,
  encodeComponent,
  failureFromResponse,
  mapped,
  probe,
  s,
  trySend,
} from '../src/index';
import { MockHost, checkConnectionWith, deliverWith, record } from '../src/testing';

const config = s.config({
  authentication: s.object({ url: s.url(), api_key: s.secret() }),
  mappings: s.mappings(),
});
type Config = Infer<typeof config>;

const put = (ctx: Context, c: Config, key: string, body: unknown) =>
  trySend(ctx, Request.put(`${c.authentication.url}/v1/contacts/${encodeComponent(key)}`).bearer(c.authentication.api_key).json(body), 'acme');

const acme = defineConnector({
  about: { typeId: 'acme', version: '1.2.3', displayName: 'Acme', defaultHosts: ['api.acme.example'], maxConcurrency: 2 },
  config,
  deliver(ctx, c, rec) {
    const answer = put(ctx, c, rec.key, { attributes: mapped(c.mappings, rec) });
    if ('tag' in answer) return answer;
    if (answer.status === 201) return delivered('created');
    if (answer.ok) return delivered('updated');
    ctx.warn('contact not saved', { status: answer.status });
    return failureFromResponse(answer, 'acme contact');
  },
  checkConnection(ctx, c) {
    return probe(ctx, Request.get(`${c.authentication.url}/v1/account`).bearer(c.authentication.api_key), 'authentication.api_key');
  },
});

const CONFIG = {
  type_id: 'acme',
  authentication: { url: 'https://api.example.com', api_key: 'k-123' },
  mappings: [
    { id: 'newsletter', value: 'consents_purposes_newsletter_enabled' },
    { id: 'email', value: 'consents_channels_email_enabled' },
    { id: 'absent', value: 'no_such_property' },
  ],
};
const ANN = record('ann@example.com', { consents_purposes_newsletter_enabled: true, consents_channels_email_enabled: null });
const URL_ANN = 'https://api.example.com/v1/contacts/ann%40example.com';

test('describe carries the schema and the defaults', () => {
  const d = describe(acme);
  assert.equal(d.typeId, 'acme');
  assert.equal(d.maxConcurrency, 2);
  assert.equal(d.maxBatchSize, 1);
  assert.deepEqual(d.capabilities, { batching: false, inboundWebhooks: false });
  assert.deepEqual(JSON.parse(d.configSchema), config.json);
});

test('the mock answers by method and URL and records the request', () => {
  const host = new MockHost().on('PUT', URL_ANN, 201, { id: 'c-1' });
  assert.deepEqual(deliverWith(acme, host, CONFIG, [ANN]), [delivered('created')]);
  const [sent] = host.requests;
  assert.equal(sent!.header('authorization'), 'Bearer k-123');
  assert.deepEqual(sent!.json(), { attributes: { newsletter: true, email: null } });
});

test('a rate limit is retried after its hint and a bad request is not', () => {
  const busy = new MockHost().on('PUT', URL_ANN, 429, 'slow down', { 'Retry-After': '30' });
  assert.deepEqual(deliverWith(acme, busy, CONFIG, [ANN]), [
    { tag: 'failed', val: { retryable: true, retryAfterMs: 30_000n, message: 'HTTP 429: acme contact' } },
  ]);
  assert.deepEqual(busy.logs[0], { level: 'warn', message: 'contact not saved', fields: [['status', '429']] });
  const refused = new MockHost().on('PUT', URL_ANN, 400, { error: 'invalid' });
  assert.equal((deliverWith(acme, refused, CONFIG, [ANN])[0] as any).val.retryable, false);
});

test('a timeout is retryable and a denial is not', () => {
  const slow = new MockHost().fail('PUT', URL_ANN, { tag: 'timeout' });
  assert.deepEqual(deliverWith(acme, slow, CONFIG, [ANN]), [
    { tag: 'failed', val: { retryable: true, retryAfterMs: undefined, message: 'acme: request timed out' } },
  ]);
  const denied = new MockHost().fail('PUT', URL_ANN, { tag: 'denied', val: 'api.example.com is not allowed' });
  assert.equal((deliverWith(acme, denied, CONFIG, [ANN])[0] as any).val.retryable, false);
});

test('a request nothing answers fails the test with its method and URL', () => {
  const host = new MockHost().on('GET', 'https://api.example.com/v1/account', 200);
  assert.throws(() => deliverWith(acme, host, CONFIG, [ANN]), /no answer for PUT https:\/\/api\.example\.com\/v1\/contacts\/ann%40example\.com; routes: GET/);
});

test('queued answers go in order to unrouted requests', () => {
  const host = new MockHost().respond(201).respond(200);
  const bob = record('bob', {});
  assert.deepEqual(deliverWith(acme, host, CONFIG, [ANN, bob]), [delivered('created'), delivered('updated')]);
  assert.equal(host.requests[1]!.url, 'https://api.example.com/v1/contacts/bob');
});

test('the connection check names a refused key and tells a check it could not make', () => {
  const account = 'https://api.example.com/v1/account';
  assert.deepEqual(checkConnectionWith(acme, new MockHost().on('GET', account, 200), CONFIG), { ok: [] });
  assert.deepEqual(checkConnectionWith(acme, new MockHost().on('GET', account, 401, 'k-123 is wrong'), CONFIG), {
    ok: [{ path: 'authentication.api_key', message: 'the destination refused it (HTTP 401)' }],
  });
  assert.deepEqual(checkConnectionWith(acme, new MockHost().on('GET', account, 404), CONFIG), {
    ok: [{ path: '', message: 'the destination refused the check (HTTP 404)' }],
  });
  assert.deepEqual(checkConnectionWith(acme, new MockHost().on('GET', account, 503), CONFIG), {
    err: 'the destination answered HTTP 503; try again later',
  });
  assert.deepEqual(checkConnectionWith(acme, new MockHost().fail('GET', account, { tag: 'connection', val: 'refused' }), CONFIG), {
    err: 'the destination could not be reached: connection failed: refused',
  });
  assert.deepEqual(checkConnectionWith(acme, new MockHost().fail('GET', account, { tag: 'denied', val: 'not allowed' }), CONFIG), {
    ok: [{ path: '', message: 'the host may not reach the destination: not allowed' }],
  });
});

test('a definition needs exactly one of deliver and deliverBatch', () => {
  assert.throws(
    () => defineConnector({ about: { typeId: 'x', version: '0.1.0', displayName: 'X' }, config }),
    /exactly one of deliver and deliverBatch/,
  );
});

test('a batching connector answers for every record of the batch, in order', () => {
  const batching = defineConnector({
    about: { typeId: 'bulk', version: '0.1.0', displayName: 'Bulk', maxBatchSize: 50 },
    config,
    deliverBatch(ctx, c, records) {
      const answer = trySend(ctx, Request.post(`${c.authentication.url}/v1/import`).json(records.map((r) => r.key)), 'bulk');
      if ('tag' in answer) return records.map(() => answer);
      return answer.json<string[]>().map((status) => (status === 'new' ? delivered('created') : delivered('unchanged')));
    },
  });
  assert.deepEqual(describe(batching).capabilities, { batching: true, inboundWebhooks: false });
  const host = new MockHost().on('POST', 'https://api.example.com/v1/import', 200, ['new', 'same']);
  assert.deepEqual(deliverWith(batching, host, CONFIG, [ANN, record('bob', {})]), [delivered('created'), delivered('unchanged')]);
  assert.deepEqual(host.requests[0]!.json(), ['ann@example.com', 'bob']);
  const short = new MockHost().on('POST', 'https://api.example.com/v1/import', 200, ['new']);
  assert.throws(() => deliverWith(batching, short, CONFIG, [ANN, record('bob', {})]), /returned 1 outcomes for 2 records/);
});

test('a token fetched once is kept in the integration cache', () => {
  const tokenUrl = 'https://api.example.com/oauth/token';
  const cached = defineConnector({
    about: { typeId: 'oauth', version: '0.1.0', displayName: 'OAuth' },
    config,
    deliver(ctx, c, rec) {
      let token = ctx.cache.get('token');
      if (token === undefined) {
        token = Request.post(tokenUrl).send(ctx).json<{ access_token: string }>().access_token;
        ctx.cache.set('token', token, 3_600);
      }
      const answer = trySend(ctx, Request.put(`${c.authentication.url}/v1/contacts/${rec.key}`).bearer(token), 'oauth');
      return 'tag' in answer ? answer : delivered('updated');
    },
  });
  const host = new MockHost().on('POST', tokenUrl, 200, { access_token: 'tok-1' }).respond(200).respond(200);
  deliverWith(cached, host, CONFIG, [record('a', {}), record('b', {})]);
  assert.deepEqual(host.requests.map((r) => r.method), ['post', 'put', 'put']);
  assert.equal(host.requests[2]!.header('authorization'), 'Bearer tok-1');
  assert.deepEqual(host.cache.get('token'), { value: 'tok-1', ttlSeconds: 3_600 });
});
