/**
 * The README's first command ends in `npm start`: it must say what it is doing before it goes
 * quiet (the build took minutes with no word), and a console must not get a ~400-character line
 * per event — memory errors are summarised there, with the counts and the VMs.
 *
 * Every wait has a deadline well under the runner's per-test timeout, and `npm start` runs in a
 * process group of its own, stopped in an after-hook and killed whole if it does not stop: a
 * summary that never came used to hold the file for the full 10 minutes, and leave the daemon
 * running after the runner ended the file.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type TestContext, test } from 'node:test';
import { simulate } from '../../vmm/simulator.js';
import { PATIENT_DEADLINE_MS } from '../helpers/daemon.js';
import { exitOf, spawnOwned, stopOwned } from '../helpers/processes.js';
import { WAIT_MS, within } from '../helpers/wait.js';
import { journaldRequirements, startJournald } from '../systemd/journald-fixture.js';
import { requireOrSkip } from '../systemd/tools.js';

const ROOT = new URL('../../', import.meta.url).pathname;

/** How long `npm start` may take to say the daemon is ready: it may compile dist/ first. */
const READY_MS = 240_000;

/** `npm start` in a process group of its own, its lines, and a wait for one of them. */
function quickStart(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-start-'));
  const p = spawnOwned(process.execPath, [join(ROOT, 'scripts/start.mjs'), '--metrics', '127.0.0.1:0'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, XDG_RUNTIME_DIR: dir, XDG_STATE_HOME: dir, NOTIFY_SOCKET: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  t.after(async () => {
    try {
      // start.mjs passes SIGTERM on to the daemon and exits with it; past the deadline the whole
      // group (start.mjs and the daemon) is SIGKILLed.
      await stopOwned(p, 'npm start and its daemon', 'SIGTERM', WAIT_MS, () => lines.join('\n'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  const onLine = (l: string) => {
    lines.push(l);
    for (const w of waiters.filter((x) => x.re.test(l))) w.resolve();
  };
  createInterface({ input: p.stdout! }).on('line', onLine);
  createInterface({ input: p.stderr! }).on('line', onLine);
  const exited = exitOf(p).then(({ code, signal }) => {
    throw new Error(`npm start exited (${code ?? signal}):\n${lines.join('\n')}`);
  });
  exited.catch(() => {});
  const seen = (re: RegExp, timeoutMs = WAIT_MS) =>
    within(
      `a line matching ${re} from npm start`,
      Promise.race([
        new Promise<void>((resolve) => {
          if (lines.some((l) => re.test(l))) resolve();
          else waiters.push({ re, resolve });
        }),
        exited,
      ]),
      { timeoutMs, state: () => `its lines so far:\n${lines.join('\n')}` },
    );
  return { dir, lines, seen };
}

/** Feeds the started daemon 50 events from two VMs and waits for the console's summary of them. */
async function summarised(q: ReturnType<typeof quickStart>): Promise<void> {
  const summary = await within(
    'the simulated fleet',
    simulate({
      socket: join(q.dir, 'seawall', 'plugin.sock'),
      vms: 2,
      vcpus: 1,
      events: 50,
      vmPrefix: 'qs',
      deadlineMs: PATIENT_DEADLINE_MS,
    }),
  );
  assert.equal(summary.answered, 50);
  // The summary is written every 10 s; it is awaited, not timed.
  await q.seen(
    /^50 memory errors in the last 10 s \(inject 50\) on VMs qs-[01], qs-[01] — seawall events for each/,
  );
  assert.equal(q.lines.filter((l) => l.startsWith('memory error (')).length, 0, 'no per-event lines');
}

test('npm start says what it does, then summarises memory errors on the console', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  assert.equal(pkg.scripts.start, 'node scripts/start.mjs');
  const q = quickStart(t);
  await q.seen(/^seawall daemon ready/, READY_MS);
  assert.match(q.lines[0] ?? '', /^seawall start: (compiling the TypeScript sources|dist\/ is up to date)/);
  assert.ok(q.lines.some((l) => /^seawall start: starting the daemon with its built-in defaults/.test(l)));
  await summarised(q);
});

// The daemon's `--log auto` picks journald whenever its socket listens, as on most hosts: the
// console then got nothing, and this wait, without its deadline, held the file for 10 minutes.
test('with a journald running, npm start still summarises memory errors on the console', async (t) => {
  if (!requireOrSkip(t, journaldRequirements())) return;
  const journald = await startJournald();
  t.after(() => journald.stop());
  const q = quickStart(t);
  await q.seen(/^seawall daemon ready/, READY_MS);
  await summarised(q);
});
