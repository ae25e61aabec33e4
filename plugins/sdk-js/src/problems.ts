// What is wrong with a config, each problem at its dotted path
// (`authentication.url`, `mappings[0].id`), in the same words as the Rust
// SDK and the host. A message never quotes a value: it may be a secret.

import type { Mapping } from './schema';
import type { ValidationProblem } from './wit';

/** The problems a connector's `check` finds, pushed one by one. */
export class Problems {
  private readonly found: ValidationProblem[] = [];

  push(path: string, message: string): void {
    this.found.push({ path, message });
  }

  get isEmpty(): boolean {
    return this.found.length === 0;
  }

  toArray(): ValidationProblem[] {
    return [...this.found];
  }

  /**
   * A URL field: http(s) (or a bare host when `bareHostOk`), no
   * `user:password@`, a valid host. True when it passed.
   */
  url(path: string, value: string, bareHostOk: boolean): boolean {
    const raw = value.trim();
    if (raw === '') {
      this.push(path, 'must not be empty');
      return false;
    }
    let rest: string;
    const scheme = raw.indexOf('://');
    if (scheme >= 0) {
      const name = raw.slice(0, scheme);
      if (name !== 'https' && name !== 'http') {
        this.push(path, `must be an https URL, not a \`${name}\` URL`);
        return false;
      }
      rest = raw.slice(scheme + 3);
    } else if (bareHostOk) {
      rest = raw;
    } else {
      this.push(path, 'must be an absolute URL such as https://host/');
      return false;
    }
    const host = rest.split(/[/?#]/)[0] ?? '';
    // Credentials in a URL would be shown wherever the URL is: refuse them,
    // and never quote them back.
    if (host.includes('@')) {
      this.push(path, 'must not carry a user name or password (`user:password@`); put credentials in their own fields');
      return false;
    }
    if (!isHostAndPort(host)) {
      this.push(path, `\`${withoutUserinfo(raw)}\` has no valid host`);
      return false;
    }
    return true;
  }

  /** The `mappings` at `path`: no entry blank, no destination field twice. */
  mappings(path: string, mappings: Mapping[]): void {
    const seen = new Set<string>();
    mappings.forEach((mapping, i) => {
      for (const field of ['id', 'value'] as const) {
        if (mapping[field].trim() === '') this.push(`${path}[${i}].${field}`, 'must not be empty');
      }
      if (seen.has(mapping.id)) this.push(`${path}[${i}].id`, `\`${mapping.id}\` is mapped twice`);
      seen.add(mapping.id);
    });
  }
}

// Rust's `char::is_alphanumeric`, near enough, without `\p{…}` (the
// component's JS engine has no Unicode property escapes): ASCII letters and
// digits, and any non-ASCII character that is not a space or a control.
function isHostChar(c: string): boolean {
  if (/^[A-Za-z0-9._-]$/.test(c)) return true;
  return c.charCodeAt(0) > 0x7f && !/^\s$/.test(c) && !/^[\u0080-\u009f]$/.test(c);
}

// The Rust SDK's rule, character for character.
function isHostAndPort(authority: string): boolean {
  let host: string;
  let port: string;
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    if (end <= 1) return false;
    host = authority.slice(1, end);
    port = authority.slice(end + 1);
  } else {
    const colon = authority.indexOf(':');
    host = colon < 0 ? authority : authority.slice(0, colon);
    port = colon < 0 ? '' : authority.slice(colon);
  }
  const hostOk = authority.startsWith('[')
    ? /^[0-9A-Fa-f:.]*$/.test(host)
    : host !== '' && [...host].every(isHostChar);
  const portOk = port === '' || /^:[0-9]{1,5}$/.test(port);
  return hostOk && portOk;
}

function withoutUserinfo(raw: string): string {
  const start = raw.includes('://') ? raw.indexOf('://') + 3 : 0;
  const rest = raw.slice(start);
  const cut = rest.search(/[?#]/);
  const end = cut < 0 ? rest.length : cut;
  const at = rest.slice(0, end).lastIndexOf('@');
  return at < 0 ? raw : raw.slice(0, start) + rest.slice(at + 1);
}
