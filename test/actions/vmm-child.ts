/** Spawns the test VMM (children/stubborn-vmm.ts) and follows its stdout line by line. */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export const STUBBORN = new URL('./children/stubborn-vmm.ts', import.meta.url).pathname;

export interface VmmChild {
  proc: ChildProcess;
  pid: number;
  lines: string[];
  /** Resolves with the line and the time (ms) it was seen. */
  line(pred: (l: string) => boolean): Promise<{ line: string; atMs: number }>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; atMs: number }>;
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
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
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
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; atMs: number }>(
    (resolve) => proc.once('exit', (code, signal) => resolve({ code, signal, atMs: Date.now() })),
  );
  return {
    proc,
    pid: proc.pid as number,
    lines,
    line(pred) {
      const seen = lines.find(pred);
      if (seen) return Promise.resolve({ line: seen, atMs: Date.now() });
      return new Promise((resolve) => waiters.push({ pred, resolve }));
    },
    exited,
  };
}
