#!/usr/bin/env node
// prefsync-js: the TypeScript connector's build and test steps.
//
//   prefsync-js build [--out FILE] [--wit DIR]   typecheck, bundle, componentize
//   prefsync-js test [FILE…]                     run test/**/*.test.ts under node:test
//   prefsync-js types [WIT_DIR] [--check]        regenerate the SDK's WIT types with jco
//
// Paths are relative to the connector's directory (the current one). The
// WIT contract is the one beside this SDK (`vendor/prefsync/wit` in a
// scaffolded connector, `wit/` in the prefsync repository).

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const SDK = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(SDK, 'package.json'));
const DEFAULT_WIT = resolve(SDK, '..', '..', 'wit');

function fail(message) {
  console.error(`prefsync-js: ${message}`);
  process.exit(1);
}

function option(args, name) {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const value = args[i + 1];
  if (value === undefined || value.startsWith('--')) fail(`${name} needs a value`);
  args.splice(i, 2);
  return value;
}

/** The WIT package line of `dir`'s top-level files: `prefsync:connector@0.1.3`. */
function witPackage(dir) {
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.wit'))) {
    const match = /^\s*package\s+([^;\s]+)\s*;/m.exec(readFileSync(join(dir, name), 'utf8'));
    if (match) return match[1];
  }
  fail(`no \`package …;\` line in ${dir}/*.wit`);
}

async function build(args) {
  const witDir = resolve(option(args, '--wit') ?? DEFAULT_WIT);
  const manifest = JSON.parse(readFileSync('package.json', 'utf8'));
  const name = manifest.name.replace(/^@[^/]+\//, '').replace(/-/g, '_');
  const out = resolve(option(args, '--out') ?? join('target', `${name}.wasm`));
  if (args.length) fail(`build: unexpected ${args.join(' ')}`);
  if (!existsSync('src/index.ts')) fail('build: no src/index.ts in this directory');
  if (!existsSync(join(witDir, 'connector.wit'))) fail(`build: no WIT contract at ${witDir} (give --wit DIR)`);

  // 1. Types: the same check an editor shows, so the component never
  //    carries an error the compiler knew about.
  const tsc = require.resolve('typescript/bin/tsc');
  const checked = spawnSync(process.execPath, [tsc, '--noEmit', '-p', '.'], { stdio: 'inherit' });
  if (checked.status !== 0) fail('build: the type check failed (above)');

  // 2. One ES module: componentize-js takes a single source.
  const esbuild = await import(import.meta.resolve('esbuild'));
  const work = resolve('target', 'js');
  mkdirSync(work, { recursive: true });
  const bundle = join(work, `${name}.js`);
  const result = await esbuild.build({
    entryPoints: ['src/index.ts'],
    outfile: bundle,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    external: ['prefsync:*'],
    metafile: true,
    logLevel: 'warning',
  });
  const exports = result.metafile.outputs[relative(process.cwd(), bundle)]?.exports ?? [];
  if (!exports.includes('connector')) {
    fail('build: src/index.ts must export `connector` (export const connector = exportConnector(…))');
  }

  // 3. The world: `destination`, plus the optional exports the module has.
  //    A component declares what it exports, so the host sees exactly these.
  const optional = [['connection', 'connection']].filter(([js]) => exports.includes(js)).map(([, wit]) => wit);
  const world = join(mkdtempSync(join(tmpdir(), 'prefsync-js-')), 'wit');
  // The whole package (a `deps/` folder included), plus one file declaring the world.
  cpSync(witDir, world, { recursive: true });
  writeFileSync(
    join(world, 'zz-prefsync-js.wit'),
    `package ${witPackage(witDir)};\n\n/// What this connector exports.\nworld prefsync-js {\n    include destination;\n${optional
      .map((i) => `    export ${i};\n`)
      .join('')}}\n`,
  );

  // 4. The component. No wasi:http: the sandbox lends HTTP through the contract only.
  const { componentize } = await import(import.meta.resolve('@bytecodealliance/componentize-js'));
  const started = Date.now();
  let component;
  try {
    ({ component } = await componentize({
      sourcePath: bundle,
      witPath: world,
      worldName: 'prefsync-js',
      disableFeatures: ['http', 'fetch-event'],
    }));
  } finally {
    rmSync(dirname(world), { recursive: true, force: true });
  }
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, component);
  const exported = ['connector', ...optional].join(', ');
  console.log(`${relative(process.cwd(), out)}: ${component.length} bytes, exports ${exported} (${Date.now() - started} ms)`);
}

function testFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return testFiles(path);
    return /\.test\.ts$/.test(entry) ? [path] : [];
  });
}

async function test(args) {
  const files = args.length ? args : testFiles('test').sort();
  if (files.length === 0) fail('test: no test/**/*.test.ts');
  const esbuild = await import(import.meta.resolve('esbuild'));
  const work = resolve('target', 'js-test');
  rmSync(work, { recursive: true, force: true });
  const outputs = [];
  for (const file of files) {
    const outfile = join(work, relative('.', file).replace(/\.ts$/, '.mjs'));
    await esbuild.build({
      entryPoints: [file],
      outfile,
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      sourcemap: 'inline',
      logLevel: 'warning',
    });
    outputs.push(outfile);
  }
  const run = spawnSync(process.execPath, ['--test', '--enable-source-maps', ...outputs], { stdio: 'inherit' });
  process.exit(run.status ?? 1);
}

async function types(args) {
  const check = args.includes('--check');
  const witDir = resolve(args.filter((a) => a !== '--check')[0] ?? DEFAULT_WIT);
  const transpile = require.resolve('@bytecodealliance/jco-transpile');
  // jco-transpile reads the WIT through its WASI shim, whose Node preopens
  // start empty in 0.26: open the file system's root for it.
  const shim = createRequire(transpile).resolve('@bytecodealliance/preview2-shim/filesystem');
  (await import(pathToFileURL(shim)))._setPreopens({ '/': '/' });
  const { generateGuestTypes } = await import(pathToFileURL(transpile));
  const files = {};
  for (const worldName of ['destination', 'connection-check']) {
    Object.assign(files, await generateGuestTypes(witDir, { worldName, guest: true }));
  }
  const target = join(SDK, 'generated');
  const stale = [];
  for (const [file, bytes] of Object.entries(files).sort()) {
    const path = join(target, file);
    const now = Buffer.from(bytes).toString('utf8');
    if (check) {
      if (!existsSync(path) || readFileSync(path, 'utf8') !== now) stale.push(file);
    } else {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, now);
    }
  }
  if (check && stale.length) fail(`generated/ is stale (${stale.join(', ')}); run \`npm run types\``);
  console.log(`${check ? 'checked' : 'wrote'} ${Object.keys(files).length} files in ${relative(process.cwd(), target) || '.'}`);
}

const [command, ...rest] = process.argv.slice(2);
const commands = { build, test, types };
if (!commands[command]) {
  console.error('usage: prefsync-js build [--out FILE] [--wit DIR] | test [FILE…] | types [WIT_DIR] [--check]');
  process.exit(2);
}
await commands[command](rest);
