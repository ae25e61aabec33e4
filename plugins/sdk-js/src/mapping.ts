// From a user's record to the destination's fields, by the integration's
// `mappings` (`{id: destination field, value: Didomi property}`).

import type { Mapping } from './schema';
import type { ConsentRecord, Value } from './wit';

/** A WIT value as plain JSON: `null`, a boolean, a number or a string. */
export function valueOf(value: Value): string | number | boolean | null {
  return value.tag === 'null' ? null : value.val;
}

/**
 * The mapped values as an object, destination field → value, in mapping
 * order. A property the user's state does not have is left out (the
 * destination's field is not touched); one present but null is `null`.
 */
export function mapped(mappings: Mapping[], record: ConsentRecord): Record<string, string | number | boolean | null> {
  const values = new Map(record.properties.map((p) => [p.name, p.value]));
  const out: Record<string, string | number | boolean | null> = {};
  for (const m of mappings) {
    const value = values.get(m.value);
    if (value !== undefined) out[m.id] = valueOf(value);
  }
  return out;
}
