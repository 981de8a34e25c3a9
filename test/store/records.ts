/**
 * Event records for store tests, built the way the pipeline builds them: a HELLO-derived session,
 * a wire event typed by the daemon's own `typeEvent` (real ESR decoding), a decision and verdict.
 */
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import { sessionInfo } from '../../daemon/session-info.js';
import { typeEvent } from '../../daemon/typed-event.js';
import type { EventRecord } from '../../events/bus.js';
import type { SessionInfo } from '../../events/session-info.js';
import { CAP, type EventMsg } from '../../protocol/index.js';
import { EventStore, type StoreOptions, WriteAhead, type WriteAheadOptions } from '../../store/index.js';
import { seaEvent } from '../../vmm/sample-events.js';
import { until } from '../helpers/wait.js';

export { SAMPLE_SEA_ESR as SEA_ESR } from '../../vmm/sample-events.js';

/**
 * Another connection holding the database's write lock, as an operator's `sqlite3` shell can.
 * Released by the returned function, or after the test at the latest (before anything the test
 * closes afterwards, which would wait on it).
 */
export function lockDatabase(t: TestContext, path: string): () => void {
  const db = new Database(path);
  db.exec('BEGIN IMMEDIATE');
  const release = () => {
    if (!db.open) return;
    db.exec('ROLLBACK');
    db.close();
  };
  t.after(release);
  return release;
}

/**
 * The write-ahead files of the store at `path` (its pending file, segments, the copy of held
 * rows), copied beside `copy`, a fresh store path, as a kill leaves them; returns `copy`.
 */
export function copyWriteAhead(path: string, copy: string): string {
  const from = dirname(path);
  for (const name of readdirSync(from).filter((n) => n.startsWith(`${basename(path)}.pending`)))
    copyFileSync(join(from, name), join(dirname(copy), name.replace(basename(path), basename(copy))));
  return copy;
}

/**
 * The next start, on a copy of the files the store at `path` has now, as a kill -9 would leave
 * them: recovered (boot 'after'), its write-ahead layer closed again; what it reports goes to
 * `onError`.
 */
export function startAfterKill(path: string, onError?: StoreOptions['onError']): EventStore {
  const next = new EventStore({ path: copyWriteAhead(path, scratchStorePath()), bootId: 'after', onError });
  new WriteAhead(next, { thread: false, onError }).close();
  return next;
}

export function tempStorePath(): { dir: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-store-'));
  return { dir, path: join(dir, 'events.sqlite') };
}

const scratch: string[] = [];
after(() => {
  for (const d of scratch.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A store path in a directory of its own, removed once the file's tests are done. */
export function scratchStorePath(): string {
  const { dir, path } = tempStorePath();
  scratch.push(dir);
  return path;
}

/** A store at a scratch path, closed after the test. */
export function scratchStore(
  t: TestContext,
  opts: Omit<StoreOptions, 'path'> = { bootId: 'boot-1' },
): EventStore {
  const store = new EventStore({ path: scratchStorePath(), ...opts });
  t.after(() => store.close());
  return store;
}

/**
 * A store at a scratch path and its write-ahead layer with a writer thread, retried every 20 ms
 * through a fault, both closed after the test; `errors` collects what it reports.
 */
export function threadedStore(
  t: TestContext,
  storeOpts: Omit<StoreOptions, 'path'> = {},
  aheadOpts: WriteAheadOptions = {},
): { path: string; store: EventStore; ahead: WriteAhead; errors: string[] } {
  const path = scratchStorePath();
  const store = new EventStore({ path, ...storeOpts });
  const errors: string[] = [];
  const ahead = new WriteAhead(store, {
    checkMs: 20,
    onError: (_op, err) => errors.push((err as Error).message),
    ...aheadOpts,
  });
  t.after(() => {
    ahead.close();
    store.close();
  });
  return { path, store, ahead, errors };
}

/**
 * A store of boot 'before' at a scratch path and its write-ahead layer on the event loop, both
 * closed after the test, retried every 20 ms, handing over only when the test flushes; its
 * database locked by another connection until `release` (or `recovered`). `errors` collects what
 * it reports.
 */
export function lockedWriteAhead(
  t: TestContext,
  aheadOpts: WriteAheadOptions = {},
): ReturnType<typeof threadedStore> & { release: () => void; recovered: () => Promise<void> } {
  const made = threadedStore(t, { bootId: 'before' }, { thread: false, flushMs: 3_600_000, ...aheadOpts });
  const { ahead } = made;
  const release = lockDatabase(t, made.path);
  /** Releases the lock; resolves once the fault has cleared and every row is committed. */
  const recovered = async () => {
    release();
    await until('the fault to clear', () => ahead.health.healthy && ahead.pending === 0, {
      state: () => `health ${JSON.stringify(ahead.health)}, ${ahead.pending} pending`,
    });
  };
  return { ...made, release, recovered };
}

export function session(vm: string, id = 1n, labels: Record<string, string> = { tenant: 't1' }): SessionInfo {
  return sessionInfo(
    id,
    {
      type: 'hello',
      version: 1,
      caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS,
      vmmPid: 4242,
      vcpuCount: 8,
      extAbtEsrCap: 0,
      vmId: vm,
      labels,
    },
    { pid: 4242, uid: 0, gid: 0 },
    1_700_000_000_000,
  );
}

export interface RecordSpec {
  session: SessionInfo;
  seq: number;
  timeMs: number;
  /** Guest physical address (page-aligned by typeEvent); null: GPA not valid. */
  gpa?: bigint | null;
  esr?: bigint;
  vcpu?: number;
  replay?: boolean;
  action?: 'inject' | 'kill';
  rule?: string;
}

export function record(spec: RecordSpec): EventRecord {
  const gpa = spec.gpa === undefined ? 0x8000_1000n : spec.gpa;
  const replay = spec.replay ?? false;
  const msg: EventMsg = seaEvent(spec.seq, {
    vcpu: spec.vcpu ?? 0,
    timeNs: BigInt(spec.timeMs) * 1_000_000n,
    replay,
    fallbackAction: replay ? 3 : 0,
    kvmFlags: gpa === null ? 0n : 1n,
    ...(spec.esr === undefined ? {} : { esr: spec.esr }),
    gva: 0xffff_8000_0000_1000n,
    gpa: gpa ?? 0n,
  });
  const { event, nonConforming } = typeEvent(msg, spec.session, spec.timeMs);
  const action = spec.action ?? 'inject';
  return {
    session: spec.session,
    msg,
    event,
    nonConforming,
    kernelMismatch: null,
    duplicate: false,
    replay,
    decision: replay
      ? null
      : action === 'kill'
        ? { action: 'kill', graceMs: 1000, rule: spec.rule ?? 'kill-uc', policyVersion: 'v1' }
        : {
            action: 'inject',
            inject: { kind: 'data', via: 'kvm' },
            rule: spec.rule ?? 'inject-data',
            policyVersion: 'v1',
          },
    verdict: replay
      ? null
      : {
          seq: spec.seq,
          action: action === 'kill' ? 3 : 1,
          flags: 0,
          graceMs: 0,
          esr: 0n,
          vcpuEvents: new Uint8Array(64),
        },
    verdictDowngrade: null,
    receivedNs: process.hrtime.bigint(),
    latencyNs: 0n,
  };
}

/** A count from the database file alone, read from a copy of it without its WAL. */
export function countInDatabaseFile(t: TestContext, path: string, table = 'event_rows'): number {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-checkpoint-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const copy = join(dir, 'copy.sqlite');
  copyFileSync(path, copy);
  const db = new Database(copy);
  try {
    return db.prepare(`SELECT COUNT(*) FROM ${table}`).pluck().get() as number;
  } finally {
    db.close();
  }
}
