/**
 * The `exec` migration hook: run a program (argv, no shell) with the payload as JSON on stdin.
 * Exit 0: accepted. Exit 3: refused (the orchestrator will not migrate this VM; final). Any other
 * exit or a signal: failed. Past the timeout the hook's whole process group is SIGKILLed and the
 * result is timed_out at once. When the daemon stops (the abort signal), the group is SIGKILLed
 * and the result is failed. What the hook leaves running after it exits itself is not waited for.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { ActionError } from './errors.js';
import type { HookResult, HookRunner, MigrationPayload } from './hook-types.js';

export interface ExecHookSpec {
  argv: string[];
  timeoutMs: number;
  /** Extra environment; the daemon's own environment is not passed on. */
  env: Record<string, string>;
}

/** The exit code that means "refused". */
export const EXEC_REFUSED_EXIT = 3;
const STDERR_BYTES = 512;
/** How long stderr is still read after the hook exited, for a pipe a leftover process holds. */
const STDERR_DRAIN_MS = 100;
/** The detail of a hook ended because the daemon stops. */
const STOPPED = 'daemon stopping';

export class ExecHook implements HookRunner {
  readonly name: string;
  readonly kind = 'exec' as const;
  readonly #spec: ExecHookSpec;

  constructor(name: string, spec: ExecHookSpec) {
    if (spec.argv.length === 0)
      throw new ActionError('SEAWALL_ACTION_HOOK_CONFIG', `exec hook ${name}: argv is empty`, { hook: name });
    this.name = name;
    this.#spec = spec;
  }

  run(payload: MigrationPayload, stop?: AbortSignal): Promise<HookResult> {
    const [file, ...args] = this.#spec.argv as [string, ...string[]];
    if (stop?.aborted) return Promise.resolve({ outcome: 'failed', detail: STOPPED, attempts: 0 });
    return new Promise<HookResult>((resolve) => {
      let stderr = '';
      let settled = false;
      let drain: NodeJS.Timeout | undefined;
      const tail = () => (stderr.trim() ? `: ${stderr.trim()}` : '');
      // Its own process group (and session): whatever the hook starts — a shell's children, the
      // `virsh migrate` a wrapper runs — is killed with it.
      let child: ChildProcess;
      try {
        child = spawn(file, args, {
          shell: false,
          detached: true,
          stdio: ['pipe', 'ignore', 'pipe'],
          env: {
            PATH: process.env.PATH ?? '/usr/bin:/bin',
            SEAWALL_MIGRATION_ID: payload.migrationId,
            ...this.#spec.env,
          },
        });
      } catch (err) {
        // What Node throws rather than emits (an argument the kernel refuses, say).
        resolve({ outcome: 'failed', detail: `spawn ${file}: ${(err as Error).message}`, attempts: 1 });
        return;
      }
      // At once: without a listener a failed spawn's 'error' (EMFILE, EAGAIN, ENOENT) ends the daemon.
      child.on('error', (err) => done({ outcome: 'failed', detail: `spawn ${file}: ${err.message}` }));
      // Only while the leader is unreaped: until then its pid, the group's id, cannot be reused.
      const killGroup = () => {
        if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      };
      const done = (r: Omit<HookResult, 'attempts'>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearTimeout(drain);
        stop?.removeEventListener('abort', onStop);
        // Nothing of the hook is waited for any more: a process it left behind holding the
        // stderr pipe must not keep the result (and a hook slot) back.
        child.stdin?.destroy();
        child.stderr?.destroy();
        resolve({ ...r, attempts: 1 });
      };
      const onStop = () => {
        killGroup();
        done({ outcome: 'failed', detail: STOPPED });
      };
      stop?.addEventListener('abort', onStop, { once: true });
      const timer = setTimeout(() => {
        killGroup();
        done({ outcome: 'timed_out', detail: `killed after ${this.#spec.timeoutMs} ms${tail()}` });
      }, this.#spec.timeoutMs);
      const { stdin, stderr: errPipe } = child;
      // Out of descriptors (EMFILE, ENFILE) Node makes no pipes, and only the 'error' above comes.
      if (!stdin || !errPipe) return;
      errPipe.on('data', (c: Buffer) => {
        if (stderr.length < STDERR_BYTES) stderr += c.toString('utf8', 0, STDERR_BYTES - stderr.length);
      });
      // A hook that exits without reading stdin must not fail the daemon (EPIPE).
      stdin.on('error', () => {});
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        const result = (): Omit<HookResult, 'attempts'> => {
          if (code === 0) return { outcome: 'accepted', detail: null };
          if (code === EXEC_REFUSED_EXIT) return { outcome: 'refused', detail: `exit ${code}${tail()}` };
          return { outcome: 'failed', detail: `${signal ? `signal ${signal}` : `exit ${code}`}${tail()}` };
        };
        // What the hook wrote before exiting is read to its end, unless a process it left behind
        // keeps the pipe open: then for STDERR_DRAIN_MS at most.
        if (errPipe.readableEnded) return done(result());
        errPipe.once('end', () => done(result()));
        drain = setTimeout(() => done(result()), STDERR_DRAIN_MS);
      });
      stdin.end(JSON.stringify(payload));
    });
  }
}
