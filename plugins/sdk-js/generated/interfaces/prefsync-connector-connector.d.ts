/// <reference path="./prefsync-connector-types.d.ts" />
declare module 'prefsync:connector/connector@0.1.3' {
  export function describe(): Description;
  /**
   * Every problem of `config` (the integration's JSON) at once; empty when valid.
   */
  export function validate(config: string): Array<ValidationProblem>;
  /**
   * One outcome per record, in the batch's order.
   */
  export function deliver(config: string, batch: Array<ConsentRecord>): Array<Outcome>;
  export type ConsentRecord = import('prefsync:connector/types@0.1.3').ConsentRecord;
  export interface Capabilities {
    /**
     * `deliver` accepts more than one record per call.
     */
    batching?: boolean,
    /**
     * The connector can turn inbound webhook requests into consent updates.
     */
    inboundWebhooks?: boolean,
  }
  export interface Description {
    /**
     * Matches an integration's `type_id`, e.g. `dotdigital`.
     */
    typeId: string,
    /**
     * The connector's own semver version.
     */
    version: string,
    displayName: string,
    /**
     * JSON Schema of the integration config; string fields marked
     * `"format": "uri"` name hosts the integration may reach.
     */
    configSchema: string,
    /**
     * Hosts the connector reaches unless the config names others.
     */
    defaultHosts: Array<string>,
    /**
     * Most concurrent requests the destination tolerates per integration.
     */
    maxConcurrency: number,
    /**
     * Most records per `deliver` call (1 without `batching`).
     */
    maxBatchSize: number,
    capabilities: Capabilities,
  }
  export interface ValidationProblem {
    /**
     * JSON path of the offending field, e.g. `authentication.url`.
     */
    path: string,
    message: string,
  }
  /**
   * # Variants
   * 
   * ## `"created"`
   * 
   * ## `"updated"`
   * 
   * ## `"unchanged"`
   */
  export type DeliveredKind = 'created' | 'updated' | 'unchanged';
  export interface Failure {
    /**
     * True when trying again later may succeed (timeouts, 429, 5xx).
     */
    retryable: boolean,
    /**
     * The destination's own hint, in milliseconds.
     */
    retryAfterMs?: bigint,
    message: string,
  }
  export type Outcome = OutcomeDelivered | OutcomeSkipped | OutcomeFailed;
  export interface OutcomeDelivered {
    tag: 'delivered',
    val: DeliveredKind,
  }
  /**
   * Deliberately not sent, with the reason (e.g. `contact not found`).
   */
  export interface OutcomeSkipped {
    tag: 'skipped',
    val: string,
  }
  export interface OutcomeFailed {
    tag: 'failed',
    val: Failure,
  }
}
