// @prefsync/sdk: write a prefsync destination connector in TypeScript.
// See README.md; `@prefsync/sdk/testing` holds the mock host, and
// `@prefsync/sdk/component` the WIT exports (used by `src/index.ts` only).

export * from './wit';
export { Context, type Fields, type Host, HttpRefused, describeHttpError } from './host';
export {
  Request,
  Response,
  type StatusClass,
  classifyStatus,
  delivered,
  encodeComponent,
  failureFromRefusal,
  failureFromResponse,
  permanent,
  retryAfterMs,
  retryable,
  skipped,
  trySend,
} from './http';
export { mapped, valueOf } from './mapping';
export { Problems } from './problems';
export { type Infer, type JsonSchema, type Mapping, type ObjectOf, type Schema, s } from './schema';
export { type About, type AnyConnector, type ConnectorDefinition, defineConnector, describe } from './connector';
export { CheckFailed, probe, unreachable, verdict } from './connection';
