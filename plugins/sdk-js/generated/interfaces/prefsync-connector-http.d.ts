declare module 'prefsync:connector/http@0.1.3' {
  export function send(request: Request): Response;
  /**
   * # Variants
   * 
   * ## `"get"`
   * 
   * ## `"post"`
   * 
   * ## `"put"`
   * 
   * ## `"patch"`
   * 
   * ## `"delete"`
   * 
   * ## `"head"`
   */
  export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete' | 'head';
  export interface Request {
    method: Method,
    /**
     * Absolute `https://` URL (plain `http://` only where the operator allows it).
     */
    url: string,
    headers: Array<[string, string]>,
    body?: Uint8Array,
    /**
     * Per-request timeout; the host caps it at its own limit.
     */
    timeoutMs?: number,
  }
  export interface Response {
    status: number,
    headers: Array<[string, string]>,
    body: Uint8Array,
  }
  export type HttpError = HttpErrorDenied | HttpErrorTimeout | HttpErrorConnection | HttpErrorTooLarge | HttpErrorInvalidRequest;
  /**
   * The egress policy refused the request; the text says which host and why.
   */
  export interface HttpErrorDenied {
    tag: 'denied',
    val: string,
  }
  /**
   * No answer within the timeout.
   */
  export interface HttpErrorTimeout {
    tag: 'timeout',
  }
  /**
   * DNS, TCP or TLS failure.
   */
  export interface HttpErrorConnection {
    tag: 'connection',
    val: string,
  }
  /**
   * The response body passed the host's size cap (in bytes).
   */
  export interface HttpErrorTooLarge {
    tag: 'too-large',
    val: bigint,
  }
  /**
   * The request itself is malformed (bad URL, bad header).
   */
  export interface HttpErrorInvalidRequest {
    tag: 'invalid-request',
    val: string,
  }
}
