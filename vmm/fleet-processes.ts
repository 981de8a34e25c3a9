/**
 * The simulated fleet as real VMMs are laid out: one child process per VM (fleet-child.ts). A kill
 * verdict ends that VM's process, as QEMU ends; if the VMM does not go within the grace, the
 * daemon's enforcement SIGKILLs that child — never the process that asked for the simulation,
 * which only collects the children's reports. This is what `seawall simulate` runs by default.
 */
import { fork } from 'node:child_process';
import { VmmError } from './errors.js';
import type { ChildJob, ChildReport } from './fleet-child.js';
import { LatencyRecorder } from './latency.js';
import type { SimulationOptions, SimulationSummary } from './simulator.js';

/** Children at most: each is a Node process of its own. */
export const MAX_FLEET_PROCESSES = 256;

export interface FleetProcessesSummary extends SimulationSummary {
  /**
   * Killed VMs whose process was then SIGKILLed, as the daemon enforces a kill at the grace's end;
   * their counts died with them.
   */
  sigkilled: string[];
  /**
   * VMs whose process ended without its report and not after a KILL verdict (killed by hand, a
   * crash): the events it was given (null: it ran for a duration) are in no count above.
   */
  unreported: { vm: string; events: number | null; ended: string }[];
}

type Options = Omit<SimulationOptions, 'onClient' | 'until' | 'onKill' | 'onKilled' | 'onLatency'> & {
  /** Aborted: every VM process is sent SIGTERM (they end unreported). */
  signal?: AbortSignal;
};

interface ChildResult {
  vm: string;
  events: number | null;
  summary: SimulationSummary | null;
  latencyNs: number[];
  killed: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  error: string | null;
}

function runChild(job: ChildJob, vm: string, signal: AbortSignal | undefined): Promise<ChildResult> {
  return new Promise((resolve) => {
    const child = fork(new URL('./fleet-child.js', import.meta.url), [], {
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    const r: ChildResult = {
      vm,
      events: job.events ?? null,
      summary: null,
      latencyNs: [],
      killed: false,
      code: null,
      signal: null,
      error: null,
    };
    child.on('message', (m: ChildReport) => {
      if (m.type === 'killed') r.killed = true;
      else if (m.type === 'done') {
        r.summary = m.summary;
        r.latencyNs = m.latencyNs;
      } else r.error = m.message;
    });
    child.once('error', (err) => {
      r.error = err.message;
    });
    const stop = () => child.kill('SIGTERM');
    signal?.addEventListener('abort', stop, { once: true });
    if (signal?.aborted) stop();
    child.once('exit', (code, ended) => {
      signal?.removeEventListener('abort', stop);
      r.code = code;
      r.signal = ended;
      resolve(r);
    });
    child.send(job);
  });
}

/** Runs `o.vms` VMs, one process each; events and rate are shared out evenly. */
export async function simulateInProcesses(o: Options): Promise<FleetProcessesSummary> {
  if (o.vms > MAX_FLEET_PROCESSES) {
    throw new VmmError(
      'SEAWALL_VMM_INVALID_OPTION',
      `at most ${MAX_FLEET_PROCESSES} VMs run as processes; run the fleet in one process for more`,
    );
  }
  const prefix = o.vmPrefix ?? `sim-${process.pid}`;
  const started = process.hrtime.bigint();
  const share = (total: number | undefined, i: number) =>
    total === undefined ? undefined : Math.floor(total / o.vms) + (i < total % o.vms ? 1 : 0);
  const jobs: Promise<ChildResult>[] = [];
  for (let i = 0; i < o.vms; i++) {
    const events = share(o.events, i);
    if (events === 0) continue;
    const { labelsFor, signal, ...rest } = o;
    const job: ChildJob = {
      ...rest,
      vms: 1,
      firstVm: i,
      vmPrefix: prefix,
      events,
      rate: o.rate === undefined ? undefined : o.rate / o.vms,
      labels: { ...o.labels, ...labelsFor?.(i) },
    };
    jobs.push(runChild(job, `${prefix}-${i}`, signal));
  }
  const results = await Promise.all(jobs);
  const failed = results.find((r) => r.error !== null && !r.killed);
  if (failed) throw new VmmError('SEAWALL_VMM_INVALID_OPTION', `VM ${failed.vm}: ${failed.error}`);
  const latency = new LatencyRecorder();
  const out: FleetProcessesSummary = {
    vms: o.vms,
    vcpus: o.vcpus,
    sent: 0,
    answered: 0,
    fallbacks: 0,
    replayed: 0,
    lateVerdicts: 0,
    killed: [],
    sigkilled: [],
    unreported: [],
    verdicts: {},
    durationMs: 0,
    eventsPerSecond: 0,
    latencyUs: {},
  };
  for (const r of results) {
    if (r.killed) out.killed.push(r.vm);
    // Only a VM that reported its KILL verdict was SIGKILLed by the daemon's enforcement, as far
    // as this process can tell; any other end without a report is a failure of the run.
    if (r.killed && r.signal === 'SIGKILL') out.sigkilled.push(r.vm);
    if (!r.killed && r.summary === null) {
      const ended = r.signal === null ? `exit code ${r.code}` : `signal ${r.signal}`;
      out.unreported.push({ vm: r.vm, events: r.events, ended });
    }
    const s = r.summary;
    for (const ns of r.latencyNs) latency.add(ns);
    if (!s) continue;
    out.sent += s.sent;
    out.answered += s.answered;
    out.fallbacks += s.fallbacks;
    out.replayed += s.replayed;
    out.lateVerdicts += s.lateVerdicts;
    for (const [k, v] of Object.entries(s.verdicts)) out.verdicts[k] = (out.verdicts[k] ?? 0) + v;
  }
  const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
  out.durationMs = Math.round(durationMs);
  out.eventsPerSecond = Math.round(out.sent / (durationMs / 1000));
  out.latencyUs = latency.percentiles([50, 99, 99.9]);
  return out;
}
