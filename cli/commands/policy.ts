/**
 * `seawall policy check|test|explain`: validate policy files, run their test files, and explain
 * one event's decision with the bytes the verdict would carry.
 */
import { parseArgs } from 'node:util';
import { INJECTION_ABIS, type InjectionAbi } from '../../kvm/index.js';
import {
  compilePolicy,
  type HostCapabilities,
  loadPolicyFile,
  type PolicyIssue,
  parsePolicyEvent,
  runPolicyTestFile,
} from '../../policies/index.js';
import { CliError, type CliIo, toJson } from '../cli-error.js';

export const POLICY_USAGE = [
  'seawall policy check FILE…                        validate policies; every error as file:line: path: message',
  'seawall policy test FILE…                         run policy test files (*.test.yaml)',
  'seawall policy explain --policy FILE --event JSON [--host-abi merged|ext-abt-esr] [--no-ras] [--emulate]',
  '                                                  the decision for one event, why, and the vcpu-events bytes',
].join('\n');

function printIssues(io: CliIo, file: string, issues: readonly PolicyIssue[]): void {
  for (const i of issues) io.err(`${file}:${i.line}: ${i.path || '(document)'}: ${i.message}`);
}

async function check(files: string[], io: CliIo): Promise<number> {
  if (files.length === 0) throw new CliError('usage', `usage:\n${POLICY_USAGE}`);
  let status = 0;
  for (const file of files) {
    const r = await loadPolicyFile(file);
    if (!r.ok) {
      printIssues(io, file, r.issues);
      status = 1;
      continue;
    }
    const p = compilePolicy(r.policy);
    const extra = [p.dryRun ? 'dry-run' : '', p.indexKey ? `indexed by label ${p.indexKey}` : '']
      .filter(Boolean)
      .join(', ');
    io.out(
      `${file}: ok: policy '${p.name}', ${p.rules.length} rule${p.rules.length === 1 ? '' : 's'} + default, version ${p.version}${extra ? ` (${extra})` : ''}`,
    );
  }
  return status;
}

async function test(files: string[], io: CliIo): Promise<number> {
  if (files.length === 0) throw new CliError('usage', `usage:\n${POLICY_USAGE}`);
  let status = 0;
  for (const file of files) {
    const r = await runPolicyTestFile(file);
    if (!r.ok) {
      printIssues(io, r.file, r.issues);
      status = 1;
      continue;
    }
    if (r.failures.length === 0) {
      io.out(
        `${file}: PASS: ${r.tests} test${r.tests === 1 ? '' : 's'}, ${r.events} events against ${r.policyPath}`,
      );
      continue;
    }
    status = 1;
    io.out(`${file}: FAIL: ${r.failures.length} of ${r.events} events differ`);
    for (const f of r.failures) {
      io.out(`  ${file}:${f.line}: test '${f.test}', event ${f.step} (at ${f.at}): got ${f.decision}`);
      const width = Math.max(...f.mismatches.map((m) => m.key.length));
      for (const m of f.mismatches)
        io.out(`    ${m.key.padEnd(width)}  expected ${m.expected}, got ${m.got}`);
    }
  }
  return status;
}

async function explain(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      policy: { type: 'string' },
      event: { type: 'string' },
      'host-abi': { type: 'string', default: 'merged' },
      'no-ras': { type: 'boolean', default: false },
      emulate: { type: 'boolean', default: false },
    },
  });
  if (values.policy === undefined || values.event === undefined)
    throw new CliError('usage', `--policy and --event are required\nusage:\n${POLICY_USAGE}`);
  const abi = values['host-abi'] as InjectionAbi;
  if (!INJECTION_ABIS.includes(abi))
    throw new CliError('usage', `--host-abi must be one of ${INJECTION_ABIS.join(', ')}`);
  let obj: unknown;
  try {
    obj = JSON.parse(values.event);
  } catch (err) {
    throw new CliError('failed', `--event is not JSON: ${(err as Error).message}`);
  }
  const ev = parsePolicyEvent(obj);
  if (!ev.ok) {
    printIssues(io, '--event', ev.issues);
    return 1;
  }
  const loaded = await loadPolicyFile(values.policy);
  if (!loaded.ok) {
    printIssues(io, values.policy, loaded.issues);
    return 1;
  }
  const host: HostCapabilities = { abi, ras: !values['no-ras'], emulateAbort: values.emulate };
  io.out(toJson(compilePolicy(loaded.policy).explain(ev.event, host)));
  return 0;
}

/** Dispatches `seawall policy …`; returns the exit status (0 ok, 1 invalid/failed, 2 usage). */
export async function policyCommand(argv: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'check') return check(rest, io);
  if (sub === 'test') return test(rest, io);
  if (sub === 'explain') return explain(rest, io);
  throw new CliError('usage', `usage:\n${POLICY_USAGE}`);
}
