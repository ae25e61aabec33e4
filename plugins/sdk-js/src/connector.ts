// A connector is one object: what it is (`describe`), its config schema,
// the rules a schema cannot say (`check`), and `deliver`; optionally
// `checkConnection`. `defineConnector` types it; `component.ts` exports it
// through the WIT, and `testing.ts` calls it with a mock host.

import { Context, type Host } from './host';
import { permanent } from './http';
import { Problems } from './problems';
import type { Infer, Schema } from './schema';
import type { ConsentRecord, Description, Outcome, ValidationProblem } from './wit';

/** What `describe` says, less what the SDK fills in (the schema, capabilities). */
export interface About {
  /** The `type_id` integrations name; never change it once shipped. */
  typeId: string;
  /** The connector's semver version; an upgrade needs a greater one. */
  version: string;
  displayName: string;
  /** Hosts every integration may reach besides the config's `format: uri` fields. */
  defaultHosts?: string[];
  /** Most concurrent requests the destination tolerates per integration (default 4). */
  maxConcurrency?: number;
  /**
   * Most records the host hands over at once (default 1). With `deliver`,
   * the SDK calls it once per record of the batch; `deliverBatch` gets
   * them together, for an API that takes many records in one request.
   */
  maxBatchSize?: number;
}

/** A connector for configs described by `S`. */
export interface ConnectorDefinition<S extends Schema<unknown, boolean>> {
  about: About;
  /** The config's one description: the host checks every config against it. */
  config: S;
  /** Rules the schema cannot say; runs only on configs that fit the schema. */
  check?(config: Infer<S>, problems: Problems): void;
  /** One record's delivery (the host batches by `maxBatchSize` records). */
  deliver?(ctx: Context, config: Infer<S>, record: ConsentRecord): Outcome;
  /** A whole batch at once, one outcome per record in order; for batching APIs. */
  deliverBatch?(ctx: Context, config: Infer<S>, records: ConsentRecord[]): Outcome[];
  /**
   * The connection check (Segment's `testAuthentication`): the cheapest
   * authenticated read, writing nothing. Returns what the destination
   * refused (empty: accepted); throws `CheckFailed` when the check could
   * not be made. `connection.probe` does the usual case.
   */
  checkConnection?(ctx: Context, config: Infer<S>): ValidationProblem[];
}

/** Types a connector definition; returns it unchanged. */
export function defineConnector<S extends Schema<unknown, boolean>>(definition: ConnectorDefinition<S>): ConnectorDefinition<S> {
  if (!definition.deliver === !definition.deliverBatch) {
    throw new Error(`${definition.about.typeId}: define exactly one of deliver and deliverBatch`);
  }
  return definition;
}

/** A definition whatever its config type, for the functions below. */
export type AnyConnector = ConnectorDefinition<Schema<any, boolean>>;

/** The WIT `description`. */
export function describe(connector: AnyConnector): Description {
  const batch = connector.about.maxBatchSize ?? 1;
  return {
    typeId: connector.about.typeId,
    version: connector.about.version,
    displayName: connector.about.displayName,
    configSchema: JSON.stringify(connector.config.json),
    defaultHosts: connector.about.defaultHosts ?? [],
    maxConcurrency: connector.about.maxConcurrency ?? 4,
    maxBatchSize: batch,
    capabilities: { batching: batch > 1, inboundWebhooks: false },
  };
}

/** Parses config text; a syntax error is a problem that says where. */
export function parseConfig(text: string): { config: unknown } | { problems: ValidationProblem[] } {
  try {
    return { config: JSON.parse(text) };
  } catch (e) {
    return { problems: [{ path: '', message: `invalid JSON: ${(e as Error).message}` }] };
  }
}

/**
 * The connector's own rules on a config the host found fitting its schema
 * (the component's `validate`: the host checked the schema first).
 */
export function checkRules(connector: AnyConnector, text: string): ValidationProblem[] {
  const parsed = parseConfig(text);
  if ('problems' in parsed) return parsed.problems;
  const problems = new Problems();
  connector.check?.(parsed.config, problems);
  return problems.toArray();
}

/**
 * One outcome per record, in order. An error the connector throws is not
 * caught: the call traps, as a Rust connector's panic does, and the host
 * treats it as the connector's failure.
 */
export function deliver(connector: AnyConnector, host: Host, text: string, records: ConsentRecord[]): Outcome[] {
  const parsed = parseConfig(text);
  if ('problems' in parsed) {
    return records.map(() => permanent(`${connector.about.typeId}: the config is not JSON`));
  }
  const ctx = new Context(host);
  if (connector.deliverBatch) {
    const outcomes = connector.deliverBatch(ctx, parsed.config, records);
    if (outcomes.length !== records.length) {
      throw new Error(`deliverBatch returned ${outcomes.length} outcomes for ${records.length} records`);
    }
    return outcomes;
  }
  return records.map((record) => connector.deliver!(ctx, parsed.config, record));
}
