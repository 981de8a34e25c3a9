/**
 * The `exec` migration hook: run a program (argv, no shell) with the payload as JSON on stdin.
 * Exit 0: accepted. Exit 3: refused (the orchestrator will not migrate this VM; final). Any other
 * exit or a signal: failed. Past the timeout the child is SIGKILLed: timed_out.
 */
import { spawn } from 'node:child_process';
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

  run(payload: MigrationPayload): Promise<HookResult> {
    const [file, ...args] = this.#spec.argv as [string, ...string[]];
    return new Promise<HookResult>((resolve) => {
      let stderr = '';
      let timedOut = false;
      let settled = false;
      const done = (r: Omit<HookResult, 'attempts'>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ ...r, attempts: 1 });
      };
      const child = spawn(file, args, {
        shell: false,
        stdio: ['pipe', 'ignore', 'pipe'],
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          SEAWALL_MIGRATION_ID: payload.migrationId,
          ...this.#spec.env,
        },
      });
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, this.#spec.timeoutMs);
      child.stderr.on('data', (c: Buffer) => {
        if (stderr.length < STDERR_BYTES) stderr += c.toString('utf8', 0, STDERR_BYTES - stderr.length);
      });
      // A hook that exits without reading stdin must not fail the daemon (EPIPE).
      child.stdin.on('error', () => {});
      child.on('error', (err) => done({ outcome: 'failed', detail: `spawn ${file}: ${err.message}` }));
      child.on('close', (code, signal) => {
        const tail = stderr.trim() ? `: ${stderr.trim()}` : '';
        if (timedOut)
          return done({ outcome: 'timed_out', detail: `killed after ${this.#spec.timeoutMs} ms${tail}` });
        if (code === 0) return done({ outcome: 'accepted', detail: null });
        if (code === EXEC_REFUSED_EXIT) return done({ outcome: 'refused', detail: `exit ${code}${tail}` });
        done({ outcome: 'failed', detail: `${signal ? `signal ${signal}` : `exit ${code}`}${tail}` });
      });
      child.stdin.end(JSON.stringify(payload));
    });
  }
}
