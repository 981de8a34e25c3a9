/**
 * A NOTIFY_SOCKET receiver for tests of anything that speaks sd_notify(3): this folder's
 * notify.ts/watchdog.ts, the real daemon, or systemd-journald itself (see journald-fixture.ts).
 *
 *     const rx = await startNotifyReceiver();
 *     const child = spawn(cmd, args, { env: { ...process.env, ...rx.env } });
 *     const ready = await rx.waitFor((m) => m.fields.READY === '1');
 *     await rx.close();
 *
 * The socket is an AF_UNIX datagram socket bound by a python3 child (notify-receiver.py),
 * because Node's dgram cannot bind one.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { exitOf, runFile as run, spawnOwned, stopOwned } from '../helpers/processes.js';
import { WAIT_MS, WaitTimeout, within } from '../helpers/wait.js';

/** One datagram as received. */
export interface NotifyMessage {
  /** The datagram text, e.g. `READY=1\nSTATUS=up`. */
  readonly text: string;
  /** Its newline-separated assignments; a repeated key keeps the last value. */
  readonly fields: Readonly<Record<string, string>>;
  /** Receive time on CLOCK_MONOTONIC, µs (comparable with MONOTONIC_USEC=). */
  readonly usec: bigint;
  /** Sender pid from SCM_CREDENTIALS, as the service manager sees it. */
  readonly pid: number | undefined;
  /** Position in {@link NotifyReceiver.messages}. */
  readonly index: number;
}

/** A running receiver. */
export interface NotifyReceiver {
  /** The bound socket path. */
  readonly socketPath: string;
  /** `{ NOTIFY_SOCKET }`, to spread into a child's environment. */
  readonly env: { NOTIFY_SOCKET: string };
  /** Every datagram so far, in arrival order. */
  readonly messages: readonly NotifyMessage[];
  /**
   * Resolves with the first message at or after index `from` (default 0) that matches; rejects
   * after `timeoutMs` (default WAIT_MS), a safety net rather than a synchronisation device.
   */
  waitFor(
    match: (m: NotifyMessage) => boolean,
    options?: { from?: number; timeoutMs?: number },
  ): Promise<NotifyMessage>;
  /**
   * Resolves once every datagram sent to the socket before the call is in {@link messages}: it
   * sends a marker of its own (the socket has one receive queue, read in order) and waits for it.
   * For asserting that something was not sent, by a process that has exited.
   */
  barrier(): Promise<void>;
  /**
   * Started with `hold`: how many datagrams of its own fill its receive queue, so that the next
   * sender blocks in sendmsg(2) until {@link release}. 0 otherwise.
   */
  readonly filled: number;
  /** Started with `hold`: starts reading (the fill datagrams come first). */
  release(): void;
  /** Stops the receiver and removes its directory. */
  close(): Promise<void>;
}

const SEND = new URL('./send-datagram.py', import.meta.url).pathname;
let barriers = 0;

function parseFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return fields;
}

/**
 * Starts a receiver on a fresh socket in a private temporary directory. With `hold`, a manager
 * that reads nothing until {@link NotifyReceiver.release}, its receive queue already full.
 */
export async function startNotifyReceiver(
  python = 'python3',
  { hold = false }: { hold?: boolean } = {},
): Promise<NotifyReceiver> {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-notify-'));
  const socketPath = join(dir, 'notify.sock');
  const script = new URL('./notify-receiver.py', import.meta.url).pathname;
  const child: ChildProcess = spawnOwned(python, ['-u', script, socketPath, ...(hold ? ['--hold'] : [])], {
    stdio: [hold ? 'pipe' : 'ignore', 'pipe', 'inherit'],
  });
  let filled = 0;
  const messages: NotifyMessage[] = [];
  const waiters = new Set<() => void>();
  let exited = false;
  const exit = exitOf(child).then(() => {
    exited = true;
    for (const wake of waiters) wake();
  });

  const bound = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    void exit.then(() => reject(new Error('notify receiver exited before binding')));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const record = JSON.parse(line) as {
        bound?: string;
        filled?: number;
        usec?: number;
        pid?: number | null;
        text?: string;
      };
      if (record.bound !== undefined) {
        filled = record.filled ?? 0;
        return resolve();
      }
      const text = record.text ?? '';
      messages.push({
        text,
        fields: parseFields(text),
        usec: BigInt(record.usec ?? 0),
        pid: record.pid ?? undefined,
        index: messages.length,
      });
      for (const wake of waiters) wake();
    });
  });
  await within('the notify receiver to bind its socket', bound);

  const receiver: NotifyReceiver = {
    socketPath,
    env: { NOTIFY_SOCKET: socketPath },
    messages,
    filled,
    release() {
      child.stdin?.end('release\n');
    },
    waitFor(match, { from = 0, timeoutMs = WAIT_MS } = {}) {
      return new Promise((resolve, reject) => {
        let next = from;
        const check = (): void => {
          for (; next < messages.length; next++) {
            const m = messages[next]!;
            if (match(m)) {
              settle(() => resolve(m));
              return;
            }
          }
          if (exited) settle(() => reject(new Error('notify receiver exited')));
        };
        const timer = setTimeout(
          () =>
            settle(() =>
              reject(
                new WaitTimeout(
                  'a matching sd_notify message',
                  timeoutMs,
                  `received from index ${from}: ${JSON.stringify(messages.slice(from).map((m) => m.text))}`,
                ),
              ),
            ),
          timeoutMs,
        );
        const settle = (fn: () => void): void => {
          clearTimeout(timer);
          waiters.delete(check);
          fn();
        };
        waiters.add(check);
        check();
      });
    },
    async barrier() {
      const marker = `SEAWALL_TEST_BARRIER=${process.pid}-${barriers++}`;
      const from = messages.length;
      await run(python, [SEND, socketPath, marker]);
      await receiver.waitFor((m) => m.text === marker, { from });
    },
    async close() {
      if (!exited) await stopOwned(child, 'the notify receiver');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return receiver;
}
