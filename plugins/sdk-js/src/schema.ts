// A connector's config, described once: the builder below yields the JSON
// Schema the host checks every config against (and the console draws its
// form from) and, through `Infer`, the TypeScript type `deliver` receives.
// It emits the same shapes as the Rust SDK's derive: draft 2020-12, every
// subschema inline, closed blocks (`additionalProperties: false`), secrets
// `writeOnly`, URL fields `format: uri` (the egress allowlist is built from
// those).

/** A JSON Schema document, as plain JSON. */
export type JsonSchema = { [key: string]: unknown };

/** A schema for values of type `T`; `Optional` marks a field that may be left out. */
export interface Schema<T, Optional extends boolean = false> {
  readonly json: JsonSchema;
  readonly optional: Optional;
  /** Never set: carries `T` for `Infer`. */
  readonly __type?: T;
}

/** The TypeScript type a schema describes. */
export type Infer<S> = S extends Schema<infer T, boolean> ? T : never;

type Fields = Record<string, Schema<unknown, boolean>>;
type RequiredKeys<F extends Fields> = { [K in keyof F]: F[K] extends Schema<unknown, true> ? never : K }[keyof F];
type OptionalKeys<F extends Fields> = { [K in keyof F]: F[K] extends Schema<unknown, true> ? K : never }[keyof F];
type Simplify<T> = { [K in keyof T]: T[K] } & {};
/** The object type of a set of fields: optional ones may be missing. */
export type ObjectOf<F extends Fields> = Simplify<
  { [K in RequiredKeys<F>]: Infer<F[K]> } & { [K in OptionalKeys<F>]?: Infer<F[K]> }
>;

/** What every field may say about itself. */
export interface Common<T> {
  /** Shown in the console's form and in the generated docs. */
  description?: string;
  /** The value the connector uses when the field is left out (documentation only). */
  default?: T;
}

export interface StringOptions extends Common<string> {
  minLength?: number;
  maxLength?: number;
  /** A regular expression the value must match (JSON Schema `pattern`). */
  pattern?: string;
  /** `uri`: the host lets the integration reach this URL's host. */
  format?: 'uri' | 'email' | 'date-time';
}

export interface NumberOptions extends Common<number> {
  minimum?: number;
  maximum?: number;
}

function make<T, O extends boolean = false>(json: JsonSchema, optional = false as O): Schema<T, O> {
  return { json, optional };
}

function common<T>(json: JsonSchema, options: Common<T> | undefined): JsonSchema {
  if (options?.description !== undefined) json.description = options.description;
  if (options?.default !== undefined) json.default = options.default;
  return json;
}

/** The schema builder: `s.object({url: s.url(), api_key: s.secret()})`. */
export const s = {
  string(options?: StringOptions): Schema<string> {
    const json: JsonSchema = { type: 'string' };
    for (const key of ['minLength', 'maxLength', 'pattern', 'format'] as const) {
      if (options?.[key] !== undefined) json[key] = options[key];
    }
    return make(common(json, options));
  },

  /** An absolute URL whose host the integration may reach; not empty. */
  url(options?: Common<string>): Schema<string> {
    return s.string({ ...options, format: 'uri', minLength: 1 });
  },

  /**
   * A credential: `writeOnly`, so the host never shows it (API answers,
   * logs, errors, cassettes) and the console never fills it in; not empty.
   */
  secret(options?: Common<string>): Schema<string> {
    const schema = s.string({ ...options, minLength: 1 });
    return make({ ...schema.json, writeOnly: true });
  },

  integer(options?: NumberOptions): Schema<number> {
    return make(common(bounded({ type: 'integer' }, options), options));
  },

  number(options?: NumberOptions): Schema<number> {
    return make(common(bounded({ type: 'number' }, options), options));
  },

  boolean(options?: Common<boolean>): Schema<boolean> {
    return make(common({ type: 'boolean' }, options));
  },

  /** One of a fixed set of strings: `s.oneOf(['email', 'sms'] as const)`. */
  oneOf<const V extends readonly string[]>(values: V, options?: Common<V[number]>): Schema<V[number]> {
    return make(common({ type: 'string', enum: [...values] }, options));
  },

  array<T>(items: Schema<T, boolean>, options?: Common<T[]> & { minItems?: number; maxItems?: number }): Schema<T[]> {
    const json: JsonSchema = { type: 'array', items: items.json };
    if (options?.minItems !== undefined) json.minItems = options.minItems;
    if (options?.maxItems !== undefined) json.maxItems = options.maxItems;
    return make(common(json, options));
  },

  /** A block of named fields; unknown fields are refused. */
  object<F extends Fields>(fields: F, options?: Common<ObjectOf<F>>): Schema<ObjectOf<F>> {
    return make(common(objectJson(fields, false), options));
  },

  /** The field may be left out (it is not `required`). */
  optional<T>(schema: Schema<T, boolean>): Schema<T | undefined, true> {
    return make<T | undefined, true>(schema.json, true);
  },

  /** Didomi's `mappings`: at least one `{id, value}`, destination field ← Didomi property. */
  mappings(options?: Common<Mapping[]>): Schema<Mapping[]> {
    const mapping = s.object(
      {
        id: s.string({ description: 'The destination field', minLength: 1 }),
        value: s.string({ description: 'The Didomi property, e.g. consents_purposes_newsletter_enabled', minLength: 1 }),
      },
      { description: 'Destination field (`id`) ← Didomi property (`value`)' },
    );
    return s.array(mapping, { minItems: 1, ...options });
  },

  /**
   * A whole integration config: its own fields, inside the seeds' shape.
   * The top level stays open, since every config also carries the host's
   * fields (`type_id`, `upsert_mode`, …).
   */
  config<F extends Fields>(fields: F, options?: Common<ObjectOf<F>>): Schema<ObjectOf<F>> {
    const json = objectJson(fields, true);
    return make(common({ $schema: 'https://json-schema.org/draft/2020-12/schema', ...json }, options));
  },
};

/** One entry of `mappings`. */
export interface Mapping {
  /** The destination's field. */
  id: string;
  /** The Didomi property whose value goes there. */
  value: string;
}

function bounded(json: JsonSchema, options: NumberOptions | undefined): JsonSchema {
  if (options?.minimum !== undefined) json.minimum = options.minimum;
  if (options?.maximum !== undefined) json.maximum = options.maximum;
  return json;
}

function objectJson(fields: Fields, open: boolean): JsonSchema {
  const properties: JsonSchema = {};
  const required: string[] = [];
  for (const [name, schema] of Object.entries(fields)) {
    properties[name] = schema.json;
    if (!schema.optional) required.push(name);
  }
  const json: JsonSchema = { type: 'object', properties };
  if (required.length > 0) json.required = required;
  if (!open) json.additionalProperties = false;
  return json;
}
