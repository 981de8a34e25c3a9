/** Shared builders for policy tests: events, hosts, policies from YAML, and the compiled CLI. */
import { spawnSync } from 'node:child_process';
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

const CLI = new URL('../../dist/bin/seawall.js', import.meta.url).pathname;

/** Runs `seawall policy …` from the compiled tree (`npm run build` first), as an operator does. */
export function runPolicyCli(...args: string[]) {
  return spawnSync(process.execPath, [CLI, 'policy', ...args], { encoding: 'utf8', timeout: WAIT_MS });
}
