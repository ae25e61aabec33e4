/// <reference path="./interfaces/prefsync-connector-connection.d.ts" />
declare module 'prefsync:connector/connection-check@0.1.3' {
  export * as connection from 'prefsync:connector/connection@0.1.3'; // export prefsync:connector/connection@0.1.3
}
