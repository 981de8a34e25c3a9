/**
 * System tools a test needs (gcc, promtool, journald…). Under CI a missing tool fails the test —
 * .ci/run installs every one of them — and elsewhere it skips with the reason shown.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { WAIT_MS } from './wait.js';

/**
 * Whether the suite runs under CI: CI set to anything but empty, "false" or "0" (CI systems set
 * "true", "1" or their own name). A missing tool must then fail, never turn into a skip.
 */
export function underCi(): boolean {
  const ci = (process.env.CI ?? '').trim().toLowerCase();
  return ci !== '' && ci !== 'false' && ci !== '0';
}

export function findTool(name: string): string | null {
  if (name.startsWith('/')) return existsSync(name) ? name : null;
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8', timeout: WAIT_MS });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** Returns the tool's path, or skips (fails under CI, {@link underCi}) the test that needs it. */
export function requireTool(t: TestContext, name: string, pkg: string): string | null {
  const path = findTool(name);
  if (path) return path;
  const reason = `${name} not found (Debian package ${pkg}; .ci/run installs it)`;
  if (underCi()) throw new Error(`required tool missing under CI: ${reason}`);
  t.skip(reason);
  return null;
}
