// The contract's types, as jco generated them from the WIT (`generated/`,
// refreshed by `npm run types`): records are objects with camelCase fields,
// variants `{tag, val}`, enums strings, u64 `bigint`, bytes `Uint8Array`.
/// <reference path="../generated/destination.d.ts" />
/// <reference path="../generated/connection-check.d.ts" />

export type {
  ConsentRecord,
  Property,
  RecordMetadata,
  Value,
} from 'prefsync:connector/types@0.1.3';
export type {
  Capabilities,
  DeliveredKind,
  Description,
  Failure,
  Outcome,
  ValidationProblem,
} from 'prefsync:connector/connector@0.1.3';
export type {
  HttpError,
  Method,
  Request as WitRequest,
  Response as WitResponse,
} from 'prefsync:connector/http@0.1.3';
export type { Level } from 'prefsync:connector/log@0.1.3';
export type { ConfigProblem } from 'prefsync:connector/connection@0.1.3';
