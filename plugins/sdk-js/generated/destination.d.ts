/// <reference path="./interfaces/prefsync-connector-cache.d.ts" />
/// <reference path="./interfaces/prefsync-connector-connector.d.ts" />
/// <reference path="./interfaces/prefsync-connector-http.d.ts" />
/// <reference path="./interfaces/prefsync-connector-log.d.ts" />
/// <reference path="./interfaces/prefsync-connector-types.d.ts" />
declare module 'prefsync:connector/destination@0.1.3' {
  export type * as PrefsyncConnectorCache013 from 'prefsync:connector/cache@0.1.3'; // import prefsync:connector/cache@0.1.3
  export type * as PrefsyncConnectorHttp013 from 'prefsync:connector/http@0.1.3'; // import prefsync:connector/http@0.1.3
  export type * as PrefsyncConnectorLog013 from 'prefsync:connector/log@0.1.3'; // import prefsync:connector/log@0.1.3
  export type * as PrefsyncConnectorTypes013 from 'prefsync:connector/types@0.1.3'; // import prefsync:connector/types@0.1.3
  export * as connector from 'prefsync:connector/connector@0.1.3'; // export prefsync:connector/connector@0.1.3
}
