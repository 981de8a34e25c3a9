/**
 * A real systemd-journald for tests, plus `journalctl -o json` to read entries back.
 *
 *     const journald = await startJournald();          // after journaldRequirements() passed
 *     … log with SYSLOG_IDENTIFIER=<unique id> …
 *     const [entry] = await journald.waitForEntries({ SYSLOG_IDENTIFIER: id });
 *     await journald.stop();
 *
 * libsystemd sends to the fixed path /run/systemd/journal/socket (there is no client-side knob
 * in systemd 252, and a journal namespace would need the client in it too), so the journal is
 * the machine's: tests isolate themselves by a unique SYSLOG_IDENTIFIER or field instead.
 *
 * If a journald already listens (a systemd host, another test file), it is reused and left
 * running. Otherwise one is started with setsid, ready when it sends READY=1 to a notify
 * receiver, and stopped by whichever user leaves last: users register in /run/seawall-test-journald
 * under a mkdir lock, because node --test runs test files in parallel processes.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { JOURNAL_SOCKET } from '../../systemd/journal.js';
import { probeUnixDatagram } from '../../systemd/unix-socket-probe.js';
import { runFile as run } from '../helpers/processes.js';
import { until, WAIT_MS, WaitTimeout, within } from '../helpers/wait.js';
import { startNotifyReceiver } from './notify-fixture.js';
import { findExecutable, tools } from './tools.js';

const JOURNALD = '/lib/systemd/systemd-journald';
const STATE = '/run/seawall-test-journald';
const LOCK = join(STATE, 'lock');
const USERS = join(STATE, 'users');
const PID_FILE = join(STATE, 'journald.pid');

/** A journald the test may log to. */
export interface JournaldHandle {
  /** True when this fixture (or a sibling test process) started journald; false for a system one. */
  readonly started: boolean;
  /**
   * `journalctl -o json` entries matching every `FIELD=value` in `match`, received at or after
   * `sinceUs` (µs since the epoch) when given. The journal outlives test runs and PIDs are reused
   * (pid_max may be 32768): a match on `_PID` alone can find another process's entries.
   */
  query(match: Readonly<Record<string, string>>, sinceUs?: number): Promise<Record<string, string>[]>;
  /**
   * Polls (after `journalctl --sync`) until at least `count` entries match; rejects after
   * `timeoutMs` (default WAIT_MS).
   */
  waitForEntries(
    match: Readonly<Record<string, string>>,
    options?: { count?: number; timeoutMs?: number; sinceUs?: number },
  ): Promise<Record<string, string>[]>;
  /**
   * Resolves once journald has stored every entry sent to its native socket before the call: it
   * sends a marker entry of its own there (one receive queue, read in order) and waits for it.
   * For asserting that a process that has exited did not log something.
   */
  barrier(): Promise<void>;
  /** Unregisters; the last user out stops a journald the fixtures started. */
  stop(): Promise<void>;
}

/** Requirements for {@link startJournald}, for `requireOrSkip` in tools.ts. */
export function journaldRequirements(): Record<string, boolean> {
  const running = probeUnixDatagram(JOURNAL_SOCKET) === 'listening';
  return {
    ...tools({ journalctl: 'systemd', python3: 'python3' }),
    [`${JOURNALD} (Debian package systemd)`]: running || existsSync(JOURNALD),
    'root, to start systemd-journald (or a running journald)': running || process.getuid?.() === 0,
  };
}

function alive(pid: number): boolean {
  try {
    // A zombie still has /proc/<pid>; it is dead for our purposes.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  mkdirSync(USERS, { recursive: true });
  // Held only while journald is started or stopped, by a live test process.
  const deadline = performance.now() + WAIT_MS;
  for (;;) {
    if (performance.now() > deadline) throw new WaitTimeout(`the journald fixture lock ${LOCK}`, WAIT_MS);
    try {
      mkdirSync(LOCK);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner = 0;
      try {
        owner = Number(readFileSync(join(LOCK, 'owner'), 'utf8'));
      } catch {} // taken or released a moment ago: retry
      // A dead owner, or one that died between mkdir and writing its pid, left the lock behind.
      const stale =
        owner > 0
          ? !alive(owner)
          : Date.now() - (statSync(LOCK, { throwIfNoEntry: false })?.mtimeMs ?? 0) > 5000;
      if (stale) rmSync(LOCK, { recursive: true, force: true });
      else await delay(20);
    }
  }
  writeFileSync(join(LOCK, 'owner'), String(process.pid));
  try {
    return await fn();
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

function liveUsers(): string[] {
  const users = [];
  for (const name of readdirSync(USERS)) {
    if (alive(Number(name.split('-')[0]))) users.push(name);
    else rmSync(join(USERS, name), { force: true });
  }
  return users;
}

function ourJournaldPid(): number | undefined {
  if (!existsSync(PID_FILE)) return undefined;
  const pid = Number(readFileSync(PID_FILE, 'utf8'));
  return pid > 0 && alive(pid) ? pid : undefined;
}

async function launch(): Promise<number> {
  const rx = await startNotifyReceiver();
  try {
    const child = spawn(findExecutable(JOURNALD) ?? JOURNALD, [], {
      detached: true, // setsid(2): journald must not share the test's session or signals
      stdio: 'ignore',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...rx.env },
    });
    child.unref();
    const failed = new Promise<never>((_, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => reject(new Error(`systemd-journald exited (${code ?? signal})`)));
    });
    // systemd-journald is a Type=notify service: READY=1 comes after its sockets are bound.
    await within(
      'READY=1 from systemd-journald',
      Promise.race([rx.waitFor((m) => m.fields.READY === '1'), failed]),
    );
    failed.catch(() => {});
    writeFileSync(PID_FILE, String(child.pid));
    return child.pid!;
  } finally {
    await rx.close();
  }
}

let counter = 0;
let barriers = 0;
const SEND = new URL('./send-datagram.py', import.meta.url).pathname;

/** Starts or joins a journald; see the module comment. */
export async function startJournald(): Promise<JournaldHandle> {
  const user = `${process.pid}-${counter++}`;
  const started = await withLock(async () => {
    writeFileSync(join(USERS, user), '');
    if (probeUnixDatagram(JOURNAL_SOCKET) === 'listening') return ourJournaldPid() !== undefined;
    await launch();
    return true;
  });

  async function query(
    match: Readonly<Record<string, string>>,
    sinceUs = 0,
  ): Promise<Record<string, string>[]> {
    const args = ['-o', 'json', '--no-pager', ...Object.entries(match).map(([k, v]) => `${k}=${v}`)];
    const { stdout } = await run('journalctl', args, { maxBuffer: 64 << 20 });
    return stdout
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, string>)
      .filter((e) => Number(e.__REALTIME_TIMESTAMP) >= sinceUs);
  }

  const handle: JournaldHandle = {
    started,
    query,
    async waitForEntries(match, { count = 1, timeoutMs = WAIT_MS, sinceUs = 0 } = {}) {
      let seen = 0;
      return until(
        `${count} journal entries for ${JSON.stringify(match)}`,
        async () => {
          // Makes journald write out what it has received; needs root, harmless to skip otherwise.
          await run('journalctl', ['--sync']).catch(() => {});
          const entries = await query(match, sinceUs);
          seen = entries.length;
          return entries.length >= count && entries;
        },
        { timeoutMs, everyMs: 50, state: () => `${seen} so far` },
      );
    },
    async barrier() {
      const marker = `${process.pid}-${barriers++}`;
      await run('python3', [SEND, JOURNAL_SOCKET, `MESSAGE=test barrier\nSEAWALL_TEST_BARRIER=${marker}\n`]);
      await handle.waitForEntries({ SEAWALL_TEST_BARRIER: marker });
    },
    async stop() {
      await withLock(async () => {
        rmSync(join(USERS, user), { force: true });
        const pid = ourJournaldPid();
        if (pid === undefined || liveUsers().length > 0) return;
        process.kill(pid, 'SIGTERM');
        await until(`systemd-journald ${pid} to exit after SIGTERM`, () => !alive(pid), {
          everyMs: 20,
        }).catch((err) => {
          process.kill(pid, 'SIGKILL');
          throw err;
        });
        rmSync(PID_FILE, { force: true });
      });
    },
  };
  return handle;
}
