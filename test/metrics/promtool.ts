// Runs Debian's promtool (package `prometheus`) as a child process for the metrics tests.
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';
import { killOwned, spawnOwned } from '../helpers/processes.js';
import { WAIT_MS, within } from '../helpers/wait.js';

export interface PromtoolResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

let available: boolean | undefined;

/**
 * Whether promtool can run here. Missing promtool skips the calling test with a visible reason,
 * except under CI=true, where it fails: CI must exercise the real tool.
 */
export function promtoolOrSkip(t: TestContext): boolean {
  available ??= spawnSync('promtool', ['--version'], { stdio: 'ignore', timeout: WAIT_MS }).status === 0;
  if (available) return true;
  if (process.env.CI === 'true') {
    throw new Error('promtool is required under CI=true: apt-get install prometheus');
  }
  t.skip('promtool not found on PATH (Debian package `prometheus`); skipping the promtool check');
  return false;
}

/** Runs `promtool ...args`, writing `stdin` if given, and collects its output; killed at the deadline. */
export async function promtool(args: readonly string[], options: { stdin?: string; cwd?: string } = {}) {
  const input = options.stdin;
  const child = spawnOwned('promtool', args, {
    cwd: options.cwd,
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  try {
    return await within(
      `promtool ${args.join(' ')}`,
      new Promise<PromtoolResult>((resolve, reject) => {
        let stdout = '';
        let stderr = '';
        child.stdout?.setEncoding('utf8').on('data', (d: string) => {
          stdout += d;
        });
        child.stderr?.setEncoding('utf8').on('data', (d: string) => {
          stderr += d;
        });
        child.on('error', reject);
        child.on('close', (code) => resolve({ code, stdout, stderr }));
        if (input !== undefined) {
          // promtool may exit before it reads all it was given: its status says why, not an EPIPE.
          child.stdin?.on('error', (err: NodeJS.ErrnoException) => {
            if (err.code !== 'EPIPE') reject(err);
          });
          child.stdin?.end(input);
        }
      }),
    );
  } finally {
    await killOwned(child, 'promtool');
  }
}
