// The host's schema check, for unit tests: the subset of JSON Schema the
// builder in `schema.ts` emits (type, properties, required,
// additionalProperties, enum, items, min/max length, items and bounds,
// pattern), with the host's words (`prefsync-sdk-schema`): at most one
// problem per path, sorted by path; and the host's URL rule on every
// `format: uri` field (`host/src/integrations/urls.rs`). A component does
// not run them: the host checks a config before it calls the connector.

import type { JsonSchema } from './schema';
import type { ValidationProblem } from './wit';

/** Every problem of `config` against `schema`, as the host's schema check lists them. */
export function schemaProblems(schema: JsonSchema, config: unknown): ValidationProblem[] {
  const found: ValidationProblem[] = [];
  const push = (path: string, message: string) => {
    if (!found.some((p) => p.path === path)) found.push({ path, message });
  };
  walk(schema, config, '', push);
  return found.sort(byPath);
}

/** The host's URL rule's problems: one per `format: uri` field it refuses. */
export function urlProblems(schema: JsonSchema, config: unknown): ValidationProblem[] {
  const found: ValidationProblem[] = [];
  uriFields(schema, config, '', (path, message) => found.push({ path, message }));
  return found;
}

/** Path order, as the host sorts problems (stable: same-path problems keep their order). */
export function byPath(a: ValidationProblem, b: ValidationProblem): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

type Push = (path: string, message: string) => void;

function join(at: string, name: string): string {
  return at === '' ? name : `${at}.${name}`;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

const TYPE_WORDS: Record<string, string> = {
  null: 'null',
  boolean: 'true or false',
  integer: 'a whole number',
  number: 'a number',
  string: 'a string',
  array: 'a list',
  object: 'an object',
};

function fits(type: string, value: unknown): boolean {
  const actual = typeOf(value);
  return actual === type || (type === 'number' && actual === 'integer');
}

function walk(schema: JsonSchema, value: unknown, at: string, push: Push): void {
  const types = schema.type === undefined ? [] : ([] as string[]).concat(schema.type as string | string[]);
  if (types.length > 0 && !types.some((t) => fits(t, value))) {
    const named = types.filter((t) => types.length === 1 || t !== 'null').map((t) => TYPE_WORDS[t] ?? t);
    push(at, `must be ${named.join(' or ')}`);
    return;
  }
  if (Array.isArray(schema.enum) && !schema.enum.includes(value)) {
    push(at, `must be one of: ${schema.enum.filter((v) => v !== null).map(shown).join(', ')}`);
    return;
  }
  if (typeof value === 'string') {
    const length = [...value].length;
    if (typeof schema.minLength === 'number' && length < schema.minLength) {
      push(at, schema.minLength === 1 ? 'must not be empty' : `must be at least ${schema.minLength} characters long`);
    } else if (typeof schema.maxLength === 'number' && length > schema.maxLength) {
      push(at, `must be at most ${schema.maxLength} characters long`);
    } else if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(value)) {
      push(at, `does not have the expected form (pattern \`${schema.pattern}\`)`);
    }
  }
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) push(at, `must be at least ${schema.minimum}`);
    if (typeof schema.maximum === 'number' && value > schema.maximum) push(at, `must be at most ${schema.maximum}`);
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === 'number' && value.length < schema.minItems) {
      push(at, schema.minItems === 1 ? 'must not be empty' : `must have at least ${schema.minItems} entries`);
    } else if (typeof schema.maxItems === 'number' && value.length > schema.maxItems) {
      push(at, `must have at most ${schema.maxItems} entries`);
    }
    const items = schema.items as JsonSchema | undefined;
    if (items) value.forEach((item, i) => walk(items, item, `${at}[${i}]`, push));
  }
  if (typeOf(value) === 'object') {
    const object = value as Record<string, unknown>;
    const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
    for (const name of (schema.required ?? []) as string[]) {
      if (!(name in object)) push(join(at, name), 'is required');
    }
    // Sorted, as the host's JSON objects keep their keys.
    const known = Object.keys(properties).sort();
    for (const [name, field] of Object.entries(object)) {
      const sub = properties[name];
      if (sub) walk(sub, field, join(at, name), push);
      else if (schema.additionalProperties === false) {
        push(join(at, name), known.length === 0 ? 'unknown field' : `unknown field (expected one of: ${known.join(', ')})`);
      }
    }
  }
}

/** The host's URL rule on each `format: uri` string the config holds. */
function uriFields(schema: JsonSchema, value: unknown, at: string, push: Push): void {
  if (schema.format === 'uri' && typeof value === 'string') {
    const problem = hostUrlProblem(value);
    if (problem) push(at, problem);
  }
  if (Array.isArray(value) && schema.items) {
    value.forEach((item, i) => uriFields(schema.items as JsonSchema, item, `${at}[${i}]`, push));
  }
  if (typeOf(value) === 'object' && schema.properties) {
    const properties = schema.properties as Record<string, JsonSchema>;
    for (const [name, field] of Object.entries(value as Record<string, unknown>)) {
      if (properties[name]) uriFields(properties[name], field, join(at, name), push);
    }
  }
}

/**
 * The host's rule (`host/src/integrations/urls.rs`): an http(s) URL, or a
 * bare host meaning https, with a host and no user name or password.
 */
export function hostUrlProblem(value: string): string | undefined {
  const EXPECTED = 'must be an http:// or https:// URL (or a bare host, meaning https)';
  const raw = value.trim();
  let url: URL;
  try {
    url = new URL(raw.includes('://') ? raw : `https://${raw}`);
  } catch {
    return EXPECTED;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return EXPECTED;
  if (url.hostname === '') return 'must name a host';
  if (url.username !== '' || url.password !== '') {
    return 'must not hold a user name or password; give credentials in their own fields';
  }
  return undefined;
}

function shown(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}
