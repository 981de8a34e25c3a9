#!/usr/bin/env node
// `npm start`: the quick start. Says what it is doing at each step — the first build takes a
// while and used to print nothing — then runs the daemon with its built-in defaults (no root, no
// configuration), logging to this console. Arguments after `npm start --` go to `seawall daemon`.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// fileURLToPath, not .pathname: a clone under a path with a space (or any other escaped
// character) must not become a directory that does not exist.
const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'dist', 'bin', 'seawall.js');

/** The newest modification time of the TypeScript sources (dist is current when newer). */
function newestSource(dir, newest = 0) {
  for (const name of readdirSync(dir)) {
    if (['node_modules', 'dist', 'test', '.git', 'bench'].includes(name)) continue;
    const path = join(dir, name);
    const st = statSync(path);
    if (st.isDirectory()) newest = newestSource(path, newest);
    else if (name.endsWith('.ts')) newest = Math.max(newest, st.mtimeMs);
  }
  return newest;
}

const say = (text) => process.stdout.write(`seawall start: ${text}\n`);
if (!existsSync(cli) || statSync(cli).mtimeMs < newestSource(root)) {
  say(
    'compiling the TypeScript sources into dist/ (tsc, then scripts/bundle.mjs; about half a minute the first time)…',
  );
  const started = Date.now();
  // package.json's build script, the one definition of the build; npm's own path when npm runs
  // this (`npm start`), else the npm on PATH.
  const npm = process.env.npm_execpath;
  const args = ['run', '--silent', 'build'];
  const build = npm
    ? spawnSync(process.execPath, [npm, ...args], { cwd: root, stdio: 'inherit' })
    : spawnSync('npm', args, { cwd: root, stdio: 'inherit' });
  if (build.status !== 0) {
    // build.error: npm could not be started at all, so nothing above says why.
    say(build.error ? `the build failed: ${build.error.message}` : 'the build failed (see above)');
    process.exit(1);
  }
  say(`compiled in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} else {
  say('dist/ is up to date');
}
say('starting the daemon with its built-in defaults: no root, no configuration; Ctrl-C stops it');
const args = process.argv.slice(2);
// The daemon's own default, `--log auto`, writes to journald whenever its socket listens: on a host
// that runs one, this console would get nothing, not even the summary. So it logs here unless the
// caller chose a target (`npm start -- --log auto`).
const chosen = args.some((a) => a === '--log' || a.startsWith('--log='));
if (!chosen) {
  args.unshift('--log', 'stderr');
  say('memory errors are summarised on this console every 10 s (--log-events each for one line per event)');
}
const daemon = spawn(process.execPath, [cli, 'daemon', ...args], { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => daemon.kill(sig));
daemon.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
