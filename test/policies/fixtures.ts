/** Shared builders for policy tests: events, hosts, policies from YAML, and the compiled CLI. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import {
  type CompiledPolicy,
  compilePolicy,
  type HostCapabilities,
  type PolicyEvent,
  PolicyState,
  parsePolicy,
  policyEventFromJson,
} from '../../policies/index.js';
import { WAIT_MS } from '../helpers/wait.js';

export const MERGED: HostCapabilities = { abi: 'merged', ras: true, emulateAbort: false };
export const EXT: HostCapabilities = { abi: 'ext-abt-esr', ras: true, emulateAbort: false };
export const T0 = Date.parse('2026-01-01T00:00:00Z');
export const MIN = 60_000;

/** An SEA event as the sea_to_user selftest produces it, with overrides. */
export function seaEvent(over: Record<string, unknown> = {}): PolicyEvent {
  return policyEventFromJson({
    kind: 'sea',
    vm: { id: 'vm1', labels: {} },
    vcpu: 0,
    esr: '0x92000410',
    gpa: '0x8000000',
    timeMs: T0,
    ...over,
  });
}

/** Parses and compiles policy YAML, failing the test with the issues if it does not load. */
export function policyFrom(yaml: string, state = new PolicyState()): CompiledPolicy {
  const r = parsePolicy(yaml, '<test>');
  if (!r.ok) throw new Error(`policy did not load: ${JSON.stringify(r.issues)}`);
  return compilePolicy(r.policy, { state });
}

const DIST = new URL('../../dist/', import.meta.url).pathname;
const CLI = `${DIST}cli/cli.js`;

/**
 * Runs `seawall policy …` from the compiled tree (`npm run build` first). Until cli/cli.ts
 * registers the command, the same compiled command module is driven through a two-line entry.
 */
export function runPolicyCli(...args: string[]) {
  const registered = readFileSync(CLI, 'utf8').includes('policyCommand');
  if (registered)
    return spawnSync(process.execPath, [CLI, 'policy', ...args], { encoding: 'utf8', timeout: WAIT_MS });
  const entry = [
    `import { policyCommand } from '${DIST}cli/commands/policy.js';`,
    `import { processIo } from '${DIST}cli/cli-error.js';`,
    `policyCommand(process.argv.slice(1), processIo).then((s) => { process.exitCode = s; },`,
    `  (e) => { process.stderr.write(String(e.message) + '\\n'); process.exitCode = e.exitCode ?? 70; });`,
  ].join('\n');
  return spawnSync(process.execPath, ['--input-type=module', '-e', entry, ...args], {
    encoding: 'utf8',
    timeout: WAIT_MS,
  });
}
