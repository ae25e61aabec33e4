declare module 'prefsync:connector/connection@0.1.3' {
  /**
   * Reaches the destination with `config` (one the host already found
   * valid) in the cheapest authenticated way that writes nothing. `ok`
   * holds what the destination refused: empty when it accepted every
   * credential and name it was shown. An error means the check itself
   * could not be made (unreachable, timeout, 5xx): the config may be
   * right.
   */
  export function check(config: string): Array<ConfigProblem>;
  /**
   * Something the destination refused in the config.
   */
  export interface ConfigProblem {
    /**
     * JSON path of the field at fault (`authentication.api_key`,
     * `properties.list_id`); empty when the destination does not say
     * which.
     */
    path: string,
    message: string,
  }
}
