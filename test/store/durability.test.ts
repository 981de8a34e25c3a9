/**
 * Durability at the store level: a child process appends batches to a real file and reports each
 * committed batch on stdout; it is SIGKILLed at a random moment, 20 times. Each time the file must
 * open cleanly (integrity_check ok), hold every batch the child reported, and hold no duplicate —
 * each restart sends the last reported batch again, with the same row ids, as a retried segment
 * does (store/rows.ts EventParams `id`). The moments (after how
 * many commits, then 0–3 ms later) are drawn from the run's seed, printed with the result.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { EventStore } from '../../store/index.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { randomFor } from '../helpers/seed.js';
import { within } from '../helpers/wait.js';
import { tempStorePath } from './records.js';

const WRITER = new URL('./fixtures/store-writer.ts', import.meta.url).pathname;
const BATCH = 16;
const ROUNDS = 20;

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/**
 * Runs the writer until it has reported `commits` batches, then SIGKILLs it `delayMs` later:
 * mid-batch, mid-commit or between batches.
 */
async function runAndKill(path: string, first: number, commits: number, delayMs: number): Promise<number> {
  const child = spawnOwned(
    process.execPath,
    ['--import', 'tsx', WRITER, path, String(first), String(BATCH)],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  try {
    let stderr = '';
    child.stderr?.on('data', (d) => {
      stderr += d;
    });
    const exited = exitOf(child);
    let last = first - 1;
    let seen = 0;
    const reported = new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const m = /^committed (\d+)$/.exec(line);
        if (!m) return;
        last = Number(m[1]);
        if (++seen === commits) {
          setTimeout(() => child.kill('SIGKILL'), delayMs);
          resolve();
        }
      });
      exited.then(() => reject(new Error(`writer exited before ${commits} commits:\n${stderr}`)));
    });
    await within(`${commits} commits from the writer`, reported, { state: () => `${seen} so far` });
    assert.equal((await within('the writer to die of SIGKILL', exited)).signal, 'SIGKILL');
    // Lines read after the kill was scheduled also count: each was printed after its commit.
    return last;
  } finally {
    await killOwned(child, 'the store writer');
  }
}

test('every reported batch survives SIGKILL, the file stays sound, nothing is duplicated', async (t) => {
  const random = randomFor(t, 'kill moments');
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  new EventStore({ path }).close(); // create the schema once, as the daemon's start would
  let reported = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const first = Math.max(1, reported - BATCH + 1);
    const commits = 1 + Math.floor(random() * 30);
    reported = Math.max(reported, await runAndKill(path, first, commits, Math.floor(random() * 4)));

    const db = new Database(path);
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok', `round ${round}`);
    const present = db.prepare('SELECT COUNT(*) FROM events WHERE seq <= ?').pluck().get(reported);
    assert.equal(present, reported, `round ${round}: all ${reported} reported events present`);
    const rows = db.prepare('SELECT COUNT(*) FROM events').pluck().get() as number;
    const distinct = db
      .prepare('SELECT COUNT(*) FROM (SELECT DISTINCT boot_id, session_id, seq FROM events)')
      .pluck()
      .get();
    assert.equal(rows, distinct, `round ${round}: no duplicate`);
    // Every event poisons its own page once: the page upserts committed with their events.
    assert.equal(db.prepare('SELECT COALESCE(SUM(count), 0) FROM poisoned_pages').pluck().get(), rows);
    const max = db.prepare('SELECT MAX(seq) FROM events').pluck().get() as number;
    assert.equal(rows, max, `round ${round}: seqs 1..${max} contiguous`);
    db.close();
  }
  assert.ok(reported >= ROUNDS * BATCH);
});
