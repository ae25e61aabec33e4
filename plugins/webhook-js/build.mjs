// Builds the component: `node build.mjs <wit dir> <out.wasm>`.
import { componentize } from '@bytecodealliance/componentize-js';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

const [witDir, out] = process.argv.slice(2);
if (!witDir || !out) {
  console.error('usage: node build.mjs <wit dir> <out.wasm>');
  process.exit(2);
}
const source = await readFile(new URL('./src/connector.js', import.meta.url), 'utf8');
const { component } = await componentize(source, {
  witPath: join(witDir, 'connector.wit'),
  worldName: 'destination',
  // The sandbox lends HTTP through the contract only: no wasi:http.
  disableFeatures: ['http', 'fetch-event'],
});
await mkdir(dirname(out), { recursive: true });
await writeFile(out, component);
console.log(`${out}: ${component.length} bytes`);
