declare module 'prefsync:connector/types@0.1.3' {
  /**
   * One property value of a user, as the mappings see it.
   */
  export type Value = ValueNull | ValueBoolean | ValueNumber | ValueText;
  /**
   * No explicit value (e.g. a consent with no choice made yet).
   */
  export interface ValueNull {
    tag: 'null',
  }
  export interface ValueBoolean {
    tag: 'boolean',
    val: boolean,
  }
  export interface ValueNumber {
    tag: 'number',
    val: number,
  }
  export interface ValueText {
    tag: 'text',
    val: string,
  }
  /**
   * A named property of a user, e.g. `consents_purposes_newsletter_enabled`.
   */
  export interface Property {
    name: string,
    value: Value,
  }
  /**
   * Where a record comes from and which state it carries.
   */
  export interface RecordMetadata {
    /**
     * The user's state version this record was built from; increases per user.
     */
    stateVersion: bigint,
    /**
     * When that state was last changed, RFC 3339.
     */
    updatedAt: string,
    /**
     * Free-form host facts (delivery id, origin integration, ...).
     */
    extra: Array<[string, string]>,
  }
  /**
   * One user to deliver: the matching key and the user's flattened properties.
   */
  export interface ConsentRecord {
    /**
     * Name of the property that identifies the user, e.g. `organization_user_id`.
     */
    keyName: string,
    /**
     * Value of that property.
     */
    key: string,
    /**
     * Every flattened property of the user's current state.
     */
    properties: Array<Property>,
    metadata: RecordMetadata,
  }
}
