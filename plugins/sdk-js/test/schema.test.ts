import assert from 'node:assert/strict';
import { test } from 'node:test';

import { type Infer, defineConnector, s } from '../src/index';
import { validateWith } from '../src/testing';

const config = s.config({
  authentication: s.object({
    url: s.url({ description: 'The API base URL' }),
    password: s.secret({ description: 'The API password' }),
  }),
  properties: s.optional(
    s.object({
      mode: s.oneOf(['email', 'sms'] as const, { description: 'Channel' }),
      batch: s.optional(s.integer({ minimum: 1, maximum: 100 })),
    }),
  ),
  mappings: s.mappings(),
});

// The type follows from the schema: this assignment is checked by tsc.
const typed: Infer<typeof config> = {
  authentication: { url: 'https://x.example', password: 'pw' },
  mappings: [{ id: 'A', value: 'b' }],
};

const acme = defineConnector({
  about: { typeId: 'acme', version: '0.1.0', displayName: 'Acme' },
  config,
  check(config, problems) {
    problems.mappings('mappings', config.mappings);
  },
  deliver: () => ({ tag: 'skipped', val: 'test' }),
});

test('the builder emits the Rust SDK derive shapes', () => {
  const json = config.json as any;
  assert.equal(json.$schema, 'https://json-schema.org/draft/2020-12/schema');
  assert.deepEqual(json.required, ['authentication', 'mappings']);
  assert.equal(json.additionalProperties, undefined, 'the top level stays open for type_id and friends');
  const auth = json.properties.authentication;
  assert.equal(auth.additionalProperties, false);
  assert.deepEqual(auth.properties.url, { type: 'string', format: 'uri', minLength: 1, description: 'The API base URL' });
  assert.equal(auth.properties.password.writeOnly, true);
  assert.deepEqual(json.properties.properties.properties.mode.enum, ['email', 'sms']);
  assert.deepEqual(json.properties.properties.required, ['mode']);
  assert.equal(json.properties.mappings.minItems, 1);
  assert.ok(typed);
});

test('problems come back as the host words them, one per path, sorted', () => {
  const problems = validateWith(acme, {
    type_id: 'acme',
    authentication: { url: 42, colour: 'red' },
    properties: { mode: 'fax', batch: 0 },
    mappings: [{ id: 'A' }, { id: 3, value: 'x' }],
  });
  assert.deepEqual(
    problems.map((p) => `${p.path}: ${p.message}`),
    [
      'authentication.colour: unknown field (expected one of: password, url)',
      'authentication.password: is required',
      'authentication.url: must be a string',
      'mappings[0].value: is required',
      'mappings[1].id: must be a string',
      'properties.batch: must be at least 1',
      'properties.mode: must be one of: email, sms',
    ],
  );
});

test('a URL field gets the host URL rule and never quotes a password', () => {
  const problems = validateWith(acme, {
    authentication: { url: 'https://user:S3cret-pw@x.example', password: 'S3cret-pw' },
    mappings: [],
  });
  assert.deepEqual(
    problems.map((p) => `${p.path}: ${p.message}`),
    [
      'authentication.url: must not hold a user name or password; give credentials in their own fields',
      'mappings: must not be empty',
    ],
  );
  assert.ok(!JSON.stringify(problems).includes('S3cret'));
});

test("the host's URL rule backs up check, naming a field once", () => {
  const problems = validateWith(acme, {
    authentication: { url: 'https://user:pw@x.example', password: 'pw' },
    mappings: [{ id: 'A', value: 'b' }, { id: 'A', value: 'c' }],
  });
  assert.deepEqual(
    problems.map((p) => `${p.path}: ${p.message}`),
    [
      'authentication.url: must not hold a user name or password; give credentials in their own fields',
      'mappings[1].id: `A` is mapped twice',
    ],
  );
  const strict = defineConnector({
    ...acme,
    check(config, problems) {
      problems.url('authentication.url', config.authentication.url, false);
    },
  });
  const once = validateWith(strict, { authentication: { url: 'https://user:pw@x.example', password: 'pw' }, mappings: [{ id: 'A', value: 'b' }] });
  assert.deepEqual(once, [
    {
      path: 'authentication.url',
      message: 'must not carry a user name or password (`user:password@`); put credentials in their own fields',
    },
  ]);
});

test('check runs only once the schema passes, and JSON errors say where', () => {
  const twice = validateWith(acme, {
    authentication: { url: 'https://x.example', password: 'pw' },
    mappings: [{ id: 'A', value: 'b' }, { id: 'A', value: 'c' }],
  });
  assert.deepEqual(twice, [{ path: 'mappings[1].id', message: '`A` is mapped twice' }]);
  const broken = validateWith(acme, '{"authentication": ');
  assert.equal(broken.length, 1);
  assert.match(broken[0]!.message, /^invalid JSON: /);
});
