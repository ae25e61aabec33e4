// prefsync destination connector in JavaScript: POSTs each user's mapped
// properties as JSON to the configured URL and classifies the answer, like
// the Rust `webhook` connector (without signatures). It implements the same
// WIT world, `prefsync:connector/destination@0.1.3`, through componentize-js:
// the contract is language-neutral.
//
// Conventions of the JS bindings: records are objects with camelCase fields,
// variants `{tag, val}`, enums strings, flags objects of booleans, u64
// BigInt, list<u8> Uint8Array; an imported function returning `result`
// returns the ok value or throws an error whose `payload` is the err value.

import { send } from 'prefsync:connector/http@0.1.3';
import { log } from 'prefsync:connector/log@0.1.3';

const RETRYABLE = new Set([408, 425, 429]);

function parse(text) {
  return JSON.parse(text);
}

function value(v) {
  return v.tag === 'null' ? null : v.val;
}

function header(headers, name) {
  const found = headers.find(([k]) => k.toLowerCase() === name);
  return found ? found[1] : undefined;
}

export const connector = {
  describe() {
    return {
      typeId: 'webhook_js',
      version: '0.1.0',
      displayName: 'Webhook (JavaScript)',
      configSchema: JSON.stringify({
        $schema: 'https://json-schema.org/draft/2020-12/schema',
        type: 'object',
        required: ['properties', 'mappings'],
        properties: {
          properties: {
            type: 'object',
            required: ['url'],
            properties: { url: { type: 'string', format: 'uri', description: 'The endpoint' } },
          },
          mappings: {
            type: 'array',
            minItems: 1,
            items: { type: 'object', required: ['id', 'value'] },
          },
        },
      }),
      defaultHosts: [],
      maxConcurrency: 2,
      maxBatchSize: 1,
      capabilities: { batching: false, inboundWebhooks: false },
    };
  },

  validate(text) {
    let config;
    try {
      config = parse(text);
    } catch (e) {
      return [{ path: '', message: `not JSON: ${e.message}` }];
    }
    const problems = [];
    const url = config?.properties?.url;
    if (typeof url !== 'string' || !/^https?:\/\/[^/]+/.test(url)) {
      problems.push({ path: 'properties.url', message: 'must be an http(s) URL' });
    }
    if (!Array.isArray(config.mappings) || config.mappings.length === 0) {
      problems.push({ path: 'mappings', message: 'must list at least one {id, value}' });
    } else {
      config.mappings.forEach((m, i) => {
        for (const field of ['id', 'value']) {
          if (typeof m?.[field] !== 'string' || m[field] === '') {
            problems.push({ path: `mappings[${i}].${field}`, message: 'must be a non-empty string' });
          }
        }
      });
    }
    return problems;
  },

  deliver(text, batch) {
    const config = parse(text);
    return batch.map((record) => {
      const values = new Map(record.properties.map((p) => [p.name, value(p.value)]));
      const properties = {};
      for (const m of config.mappings) {
        if (values.has(m.value)) properties[m.id] = values.get(m.value);
      }
      const body = {
        organization_user_id: record.key,
        state_version: Number(record.metadata.stateVersion),
        updated_at: record.metadata.updatedAt,
        properties,
      };
      let response;
      try {
        response = send({
          method: 'post',
          url: config.properties.url,
          headers: [['content-type', 'application/json']],
          body: new TextEncoder().encode(JSON.stringify(body)),
          timeoutMs: 10000,
        });
      } catch (e) {
        const error = e.payload ?? { tag: 'connection', val: String(e) };
        // A refused or malformed request will not pass later either.
        const retryable = error.tag === 'timeout' || error.tag === 'connection';
        return failed(retryable, undefined, `webhook: ${error.tag}${error.val ? `: ${error.val}` : ''}`);
      }
      log('debug', 'webhook answered', [['record_key', record.key], ['status', String(response.status)]]);
      if (response.status >= 200 && response.status < 300) {
        return { tag: 'delivered', val: 'updated' };
      }
      const retryable = RETRYABLE.has(response.status) || response.status >= 500;
      const seconds = Number(header(response.headers, 'retry-after'));
      const retryAfterMs = retryable && Number.isFinite(seconds) && seconds >= 0 ? BigInt(seconds * 1000) : undefined;
      const text = new TextDecoder().decode(response.body).slice(0, 200);
      return failed(retryable, retryAfterMs, `HTTP ${response.status}: ${text}`);
    });
  },
};

function failed(retryable, retryAfterMs, message) {
  return { tag: 'failed', val: { retryable, retryAfterMs, message } };
}
