/**
 * Test prerequisites: a missing tool fails the test under CI (test/helpers/tools.ts `underCi`)
 * and skips it, visibly, with the reason elsewhere. Never a silent pass.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { TestContext } from 'node:test';
import { underCi } from '../helpers/tools.js';

/** Absolute path of an executable found on PATH (or the absolute path itself), or undefined. */
export function findExecutable(name: string): string | undefined {
  const candidates = name.includes('/')
    ? [name]
    : (process.env.PATH ?? '/usr/bin:/bin').split(delimiter).map((dir) => join(dir, name));
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {}
  }
  return undefined;
}

/**
 * Returns true when every requirement holds. Otherwise fails the test under CI, or skips it with
 * the reason, and returns false. `requirements` maps a description (the Debian package to
 * install, the privilege needed) to whether it is met.
 */
export function requireOrSkip(t: TestContext, requirements: Record<string, boolean>): boolean {
  const missing = Object.entries(requirements)
    .filter(([, ok]) => !ok)
    .map(([what]) => what);
  if (missing.length === 0) return true;
  const reason = `missing: ${missing.join(', ')}`;
  if (underCi()) throw new Error(`${reason} (required under CI)`);
  t.skip(reason);
  return false;
}

/** The named executables as requirements for {@link requireOrSkip}, labelled with their package. */
export function tools(byPackage: Record<string, string>): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const [tool, pkg] of Object.entries(byPackage))
    out[`${tool} (Debian package ${pkg})`] = findExecutable(tool) !== undefined;
  return out;
}
