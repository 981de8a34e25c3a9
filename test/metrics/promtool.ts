// Runs Debian's promtool (package `prometheus`) as a child process for the metrics tests.
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';
import { runTool } from '../daemon/e2e/run-cli.js';
import { underCi } from '../helpers/tools.js';
import { WAIT_MS } from '../helpers/wait.js';

export interface PromtoolResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

let available: boolean | undefined;

/**
 * Whether promtool can run here. Missing promtool skips the calling test with a visible reason,
 * except under CI (test/helpers/tools.ts `underCi`), where it fails: CI must exercise the real tool.
 */
export function promtoolOrSkip(t: TestContext): boolean {
  available ??= spawnSync('promtool', ['--version'], { stdio: 'ignore', timeout: WAIT_MS }).status === 0;
  if (available) return true;
  if (underCi()) {
    throw new Error('promtool is required under CI: apt-get install prometheus');
  }
  t.skip('promtool not found on PATH (Debian package `prometheus`); skipping the promtool check');
  return false;
}

/** Runs `promtool ...args`, writing `stdin` if given, and collects its output; killed at the deadline. */
export function promtool(
  args: readonly string[],
  options: { stdin?: string; cwd?: string } = {},
): Promise<PromtoolResult> {
  return runTool('promtool', args, options);
}
