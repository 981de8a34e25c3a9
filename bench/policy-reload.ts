/**
 * What a reload costs the event loop that answers vCPUs: the daemon's own loader
 * (daemon/policy-loader.ts, with its worker thread) loads a policy of the most rules allowed, and
 * a turn of the event loop is counted each time it gets one. Printed: the longest time between two
 * turns once the worker has answered (the longest task a reload holds every verdict for), and the
 * time from the worker's answer to the compiled policy. Rules pinned to one tenant each, their
 * action an injection with ISS fields (the costliest answer to build) or a kill.
 *
 *   node --import tsx bench/policy-reload.ts [--rules N] [--runs N] [--json]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createPolicyLoader, PolicyWorker } from '../daemon/index.js';
import { POLICY_LIMITS, PolicyState } from '../policies/index.js';

const { values } = parseArgs({
  options: {
    rules: { type: 'string', default: String(POLICY_LIMITS.maxRules) },
    runs: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});
const RULES = Number(values.rules);
const RUNS = Number(values.runs);
const ACTIONS = {
  inject: '{ type: inject, abort: data, set: uer }',
  kill: '{ type: kill }',
} as const;

/** The real worker, noting when its answer reached the event loop. */
class TimedWorker extends PolicyWorker {
  answeredAt = 0;
  override async load(path: string) {
    const r = await super.load(path);
    this.answeredAt = performance.now();
    return r;
  }
}

interface Run {
  longestMs: number;
  compileMs: number;
}

async function reload(file: string): Promise<Run> {
  const worker = new TimedWorker();
  try {
    let last = performance.now();
    let longest = 0;
    let loading = true;
    const turn = () => {
      const now = performance.now();
      if (worker.answeredAt > 0) longest = Math.max(longest, now - last);
      last = now;
      if (loading) setImmediate(turn);
    };
    setImmediate(turn);
    const r = await createPolicyLoader(new PolicyState(), worker)(file);
    const done = performance.now();
    // The turn after the last task, so that it is counted too.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    loading = false;
    if (!r.ok) throw new Error(r.issues.join('\n'));
    return { longestMs: longest, compileMs: done - worker.answeredAt };
  } finally {
    worker.close();
  }
}

const dir = mkdtempSync(join(tmpdir(), 'seawall-bench-reload-'));
const results: { action: string; runs: Run[] }[] = [];
try {
  for (const [action, spec] of Object.entries(ACTIONS)) {
    const lines = ['version: 1', `name: ${action}-rules`, 'rules:'];
    for (let i = 0; i < RULES; i++)
      lines.push(`  - { name: r${i}, match: { labels: { tenant: t${i} }, kind: sea }, action: ${spec} }`);
    lines.push('default: { action: { type: inject, abort: data } }', '');
    const file = join(dir, `${action}.yaml`);
    writeFileSync(file, lines.join('\n'));
    const runs: Run[] = [];
    for (let k = 0; k < RUNS; k++) runs.push(await reload(file));
    results.push({ action, runs });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (values.json) console.log(JSON.stringify({ rules: RULES, results }));
else {
  console.log(`a reload of ${RULES.toLocaleString('en')} rules, ${RUNS} runs each`);
  for (const { action, runs } of results) {
    const fmt = (f: (r: Run) => number) => runs.map((r) => f(r).toFixed(1)).join(' / ');
    console.log(
      `${action.padEnd(7)} longest task ${fmt((r) => r.longestMs)} ms; answer to policy ${fmt((r) => r.compileMs)} ms`,
    );
  }
}
