// The second half of `npm run build`: joins tsc's output (dist/) into the files that ship, one per
// thread, in dist/bin/:
//
//   seawall.js         the CLI and the daemon (what bin, the systemd unit and the tests run)
//   writer-thread.js   the store's writer thread  (store/writer-client.ts starts ./writer-thread.js)
//   reader-thread.js   the control socket's store reader (store/reader-client.ts)
//   retention-thread.js  the store's retention passes (store/retention.ts)
//   policy-worker.js   the policy loader's worker (daemon/policy-worker.ts)
//   fleet-child.js     one simulated VMM process of `seawall simulate` (vmm/fleet-processes.ts)
//
// Each thread or child process is its own entry, beside the CLI, so the relative URLs it is
// started by resolve the same way in tsc's tree and here; the build fails if a file here names a
// './<name>.js' that is not one of them. Why: Node 20 spends a large share of the daemon's
// start resolving, reading and linking ~200 ES modules one by one (docs/performance.md, READY);
// one file per thread removes that. The code is tsc's JavaScript, joined, not transformed: no
// minifying, so stack traces keep their names, and source maps chained back to the TypeScript.
// The two native packages stay outside (they load .node files from their own directories).
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('../', import.meta.url));

const out = `${root}dist/bin`;
// From empty, so that a file no longer built cannot pass the check below.
rmSync(out, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: {
    seawall: 'dist/cli/cli.js',
    'writer-thread': 'dist/store/writer-thread.js',
    'reader-thread': 'dist/store/reader-thread.js',
    'retention-thread': 'dist/store/retention-thread.js',
    'policy-worker': 'dist/daemon/policy-worker.js',
    'fleet-child': 'dist/vmm/fleet-child.js',
  },
  outdir: out,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['koffi', 'better-sqlite3'],
  // The CommonJS packages inside (prom-client, commander) call require() for Node's built-in
  // modules; an ES module has no require of its own.
  banner: {
    js: "import { createRequire as __seawallCreateRequire } from 'node:module';\nconst require = __seawallCreateRequire(import.meta.url);",
  },
  sourcemap: true,
  legalComments: 'none',
  // Non-ASCII characters in the code escaped (esbuild's default, relied on below).
  charset: 'ascii',
  logLevel: 'warning',
});
chmodSync(`${out}/seawall.js`, 0o755);

// Inside a bundle, every import between the project's modules is resolved; a './<name>.js' left
// is a URL a Worker or a child process is started from at run time.
const missing = [];
for (const file of readdirSync(out).filter((f) => f.endsWith('.js'))) {
  for (const m of readFileSync(`${out}/${file}`, 'utf8').matchAll(/["']\.\/([\w-]+\.js)["']/g)) {
    if (!existsSync(`${out}/${m[1]}`)) missing.push(`${file} starts ./${m[1]}, which is not built`);
  }
}
// V8 keeps each file's source text for the life of the thread that runs it (to compile functions
// when first called), one byte a character when every character is Latin-1, two otherwise: the
// daemon's 1.45 MB were held as 2.9 MB for a few dashes and arrows in comments, and a thread's
// ~0.6 MB as 1.2. The code itself is ASCII (charset above); what is left is in comments, where each
// UTF-16 unit outside ASCII becomes '?', so that every column, and with it the source maps, stays.
for (const file of readdirSync(out).filter((f) => f.endsWith('.js'))) {
  const text = readFileSync(`${out}/${file}`, 'utf8');
  const ascii = text.replace(/[\u0080-\uffff]/g, '?');
  if (ascii !== text) writeFileSync(`${out}/${file}`, ascii);
}
if (missing.length > 0) {
  console.error(`bundle: ${missing.join('; ')} (add it to the entry points in scripts/bundle.mjs)`);
  process.exit(1);
}
