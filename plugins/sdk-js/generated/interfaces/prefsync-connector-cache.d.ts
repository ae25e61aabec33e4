declare module 'prefsync:connector/cache@0.1.3' {
  export function get(key: string): string | undefined;
  export function set(key: string, value: string, ttlSeconds: number): void;
}
