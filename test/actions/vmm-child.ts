/**
 * Spawns the test VMM (children/stubborn-vmm.ts) in its own process group and follows its stdout
 * line by line. Every wait has a deadline; the caller kills it in an after hook (`kill`), and
 * test/helpers/processes.ts does so at the latest when the test file ends.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { type Exit, exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { within } from '../helpers/wait.js';

export const STUBBORN = new URL('./children/stubborn-vmm.ts', import.meta.url).pathname;

export interface VmmChild {
  proc: ChildProcess;
  pid: number;
  lines: string[];
  /** Resolves with the first line (past or future) that matches and the time (ms) it was seen. */
  line(pred: (l: string) => boolean): Promise<{ line: string; atMs: number }>;
  /** Its exit, and the time (ms) it was seen; rejects at the wait deadline. */
  exited(): Promise<Exit & { atMs: number }>;
  /** SIGKILLs it (and its group) and waits. */
  kill(): Promise<void>;
}

export function spawnVmm(
  socket: string,
  vmId: string,
  mode: 'ignore' | 'exit',
  events = 1,
  claimPid?: number,
): VmmChild {
  const args = ['--import', 'tsx', STUBBORN, socket, vmId, mode, String(events)];
  if (claimPid !== undefined) args.push(String(claimPid));
  const proc = spawnOwned(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiters: Array<{
    pred: (l: string) => boolean;
    resolve: (v: { line: string; atMs: number }) => void;
  }> = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) {
      if (w.pred(l)) w.resolve({ line: l, atMs: Date.now() });
      else waiters.push(w);
    }
  });
  const exit = exitOf(proc).then((e) => ({ ...e, atMs: Date.now() }));
  const what = `test VMM ${vmId} (pid ${proc.pid})`;
  return {
    proc,
    pid: proc.pid as number,
    lines,
    line(pred) {
      const seen = lines.find(pred);
      if (seen) return Promise.resolve({ line: seen, atMs: Date.now() });
      return within(
        `a matching line from ${what}`,
        new Promise((resolve) => waiters.push({ pred, resolve })),
        { state: () => `its lines: ${JSON.stringify(lines)}` },
      );
    },
    exited: () => within(`${what} to exit`, exit, { state: () => `its lines: ${JSON.stringify(lines)}` }),
    kill: async () => {
      await killOwned(proc, what);
    },
  };
}
