/**
 * test/helpers/file-slots.ts, as scripts/run-tests.mjs uses it: a file listed as alone never runs
 * beside another file — it waits for the one running, and a file started while it waits or runs
 * waits for it (the gate), so it is not starved.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { flock, LOCK_NB, LOCK_SH, LOCK_UN } from '../helpers/flock.js';
import { killOwned, spawnOwned } from '../helpers/processes.js';
import { nextEvent, until } from '../helpers/wait.js';

const HOLDER = new URL('./children/slot-holder.ts', import.meta.url).pathname;
const SLOTS = new URL('../helpers/file-slots.ts', import.meta.url).pathname;
const locks = mkdtempSync(join(tmpdir(), 'seawall-slots-test-'));
const started: ChildProcess[] = [];
const events: string[] = [];

after(async () => {
  for (const child of started) await killOwned(child);
  rmSync(locks, { recursive: true, force: true });
});

/** A stand-in test file; `events` gets "<name> running" when it holds its slot. */
function holder(name: string, alone: boolean): { child: ChildProcess; running: Promise<unknown> } {
  const child = spawnOwned(process.execPath, ['--import', 'tsx', '--import', SLOTS, HOLDER], {
    env: {
      ...process.env,
      NODE_TEST_CONTEXT: 'child',
      SEAWALL_TEST_LOCKS: locks,
      SEAWALL_TEST_ALONE: alone ? HOLDER : '',
    },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  started.push(child);
  const lines = createInterface({ input: child.stdout as Readable });
  lines.on('line', (l) => events.push(`${name} ${l}`));
  child.once('exit', () => events.push(`${name} exited`));
  return { child, running: nextEvent(lines, 'line', `${name} to hold its slot`, (l) => l === 'running') };
}

/** Ends a holder (its stdin closes) and waits for its exit. */
async function finish(child: ChildProcess): Promise<void> {
  const exited = nextEvent(child, 'exit', 'a holder to exit');
  child.stdin?.end();
  await exited;
}

test('an alone file waits for the file beside it, and the next file waits for it', async () => {
  const first = holder('first', false);
  await first.running;
  const alone = holder('alone', true);
  // The alone file holds the gate once it waits for the machine lock: a probe of the gate fails.
  const gate = openSync(join(locks, 'gate'), 'a');
  await until('the alone file to wait at the machine lock', () => {
    if (flock(gate, LOCK_SH | LOCK_NB) !== 0) return true;
    flock(gate, LOCK_UN);
    return false;
  });
  const next = holder('next', false);
  // "first" still holds its slot, so the alone file is not running.
  assert.ok(!events.includes('alone running'), events.join(', '));
  // "next" may take a moment to reach the gate; both wait until "first" ends.
  await finish(first.child);
  await alone.running;
  // The alone file holds the machine: "next", at the gate or the machine lock, is not running.
  assert.ok(!events.includes('next running'), events.join(', '));
  await finish(alone.child);
  await next.running;
  await finish(next.child);
  // Only the order of the "running" lines is causal: a child's exit and another's first line come
  // through different pipes, and the kernel releases a lock before the parent hears of the exit.
  assert.deepEqual(
    events.filter((e) => e.endsWith(' running')),
    ['first running', 'alone running', 'next running'],
  );
});
