/**
 * The fleet simulator: N VMs × M vCPUs, each VM a PluginClient on its own connection, each vCPU a
 * loop that takes an exit, waits for its verdict, and takes the next — the way a real vCPU thread
 * stalls. Used by `seawall simulate`, by tests and by the benchmarks.
 */
import { ACTION, actionName, CAP } from '../protocol/index.js';
import { AttachClient, exitOfReport, StandInVcpus } from './attach-client.js';
import { VmmError } from './errors.js';
import { DEFAULT_MIX, EventGenerator, type EventMix, pagePool, type SeverityMix } from './event-mix.js';
import { LatencyRecorder } from './latency.js';
import { type ExitReport, type FallbackPolicy, PluginClient } from './plugin-client.js';

export interface SimulationOptions {
  socket: string;
  vms: number;
  vcpus: number;
  /** Total events across the fleet; or run for durationMs. */
  events?: number;
  durationMs?: number;
  /** Fleet-wide events per second; unlimited when absent. */
  rate?: number;
  mix?: EventMix;
  /** SET severities of SEA events, by weight (default: all UER). */
  severity?: SeverityMix;
  /** Pages per VM its errors fall on (repeats); default: any page of 4 GiB. */
  pages?: number;
  /** Index of the first VM, for a fleet split over several processes (names and page pools). */
  firstVm?: number;
  /**
   * What a KILL verdict does to its VM: `ignore` (default) keeps sending its events; `stop` ends
   * the VM as a VMM would — its vCPUs stop and its session closes — and `onKilled` is told.
   */
  onKill?: 'ignore' | 'stop';
  onKilled?: (vm: string) => void;
  /** Each verdict's latency in ns, as measured (the fleet processes collect them for the parent). */
  onLatency?: (ns: bigint) => void;
  labels?: Record<string, string>;
  /** Labels by VM index (e.g. tiers for policy demos); merged over `labels`. */
  labelsFor?: (vm: number) => Record<string, string>;
  vmPrefix?: string;
  caps?: number;
  deadlineMs?: number;
  fallback?: FallbackPolicy;
  seed?: number;
  /** Called with each client once connected (tests use it to watch fallbacks and replays). */
  onClient?: (client: PluginClient, vm: number) => void;
  /** Stops the run early when it resolves. */
  until?: Promise<unknown>;
  /**
   * Attach stand-in vCPUs (sealed memfds laid out as kvm_run) over the daemon's attach socket, and
   * write each exit into its vCPU's page before reporting it — as KVM does before KVM_RUN returns.
   * The daemon must accept stand-ins (`attach.allowStandIns`).
   */
  standIns?: { attachSocket: string; mmapSize?: number };
}

export interface SimulationSummary {
  vms: number;
  vcpus: number;
  sent: number;
  answered: number;
  fallbacks: number;
  replayed: number;
  /** Fallbacks whose verdict came after all (the daemon counted them as decided). */
  lateVerdicts: number;
  /** VMs ended by a KILL verdict (with `onKill: 'stop'`). */
  killed: string[];
  /** What each exit got, by action name: the daemon's verdict, or the plugin's fallback. */
  verdicts: Record<string, number>;
  durationMs: number;
  eventsPerSecond: number;
  latencyUs: Record<string, number>;
}

export const DEFAULT_CAPS = CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS | CAP.NISV_TO_USER;

export async function simulate(o: SimulationOptions): Promise<SimulationSummary> {
  if (o.events === undefined && o.durationMs === undefined)
    throw new VmmError('SEAWALL_VMM_INVALID_OPTION', 'simulate needs events or durationMs');
  const prefix = o.vmPrefix ?? `sim-${process.pid}`;
  const clients: PluginClient[] = [];
  const standIns: StandInVcpus[] = [];
  const attachClients: AttachClient[] = [];
  let summary: SimulationSummary | undefined;
  try {
    const first = o.firstVm ?? 0;
    for (let i = first; i < first + o.vms; i++) {
      const c = new PluginClient({
        socket: o.socket,
        vmId: `${prefix}-${i}`,
        labels: { ...o.labels, ...o.labelsFor?.(i) },
        vcpuCount: o.vcpus,
        caps: o.caps ?? DEFAULT_CAPS,
        deadlineMs: o.deadlineMs ?? 1000,
        fallback: o.fallback ?? 'inject',
      });
      await c.connect();
      clients.push(c);
      if (o.standIns) {
        const vcpus = new StandInVcpus(o.vcpus, o.standIns.mmapSize, `${prefix}-${i}`);
        standIns.push(vcpus);
        const ac = AttachClient.connect(o.standIns.attachSocket);
        attachClients.push(ac);
        await vcpus.attachAll(ac, c.sessionId as bigint);
      }
      o.onClient?.(c, i);
    }
    const latency = new LatencyRecorder();
    const verdicts: Record<string, number> = {};
    let budget = o.events ?? Number.POSITIVE_INFINITY;
    let sent = 0;
    let answered = 0;
    let stop = false;
    const start = process.hrtime.bigint();
    const deadline = o.durationMs === undefined ? null : Date.now() + o.durationMs;
    o.until?.then(() => {
      stop = true;
    });
    const totalVcpus = o.vms * o.vcpus;
    const perVcpuGapMs = o.rate ? (1000 * totalVcpus) / o.rate : 0;
    const loops: Promise<void>[] = [];
    const killed: string[] = [];
    const dead = new Set<number>();
    clients.forEach((client, idx) => {
      const vm = first + idx;
      const pages = o.pages === undefined ? undefined : pagePool(vm, o.pages);
      for (let vcpu = 0; vcpu < o.vcpus; vcpu++) {
        const gen = new EventGenerator(o.mix ?? DEFAULT_MIX, (o.seed ?? 1) * 7919 + vm * 131 + vcpu, {
          severity: o.severity,
          pages,
        });
        loops.push(
          (async () => {
            let next = Date.now();
            while (!stop && !dead.has(idx) && budget > 0 && (deadline === null || Date.now() < deadline)) {
              budget--;
              sent++;
              const report: ExitReport = gen.next(vcpu);
              const page = standIns[idx];
              if (page) {
                const exit = exitOfReport(report);
                if (exit) page.write(vcpu, exit);
              }
              const out = await client.handleExit(report);
              if (out.source === 'daemon') answered++;
              latency.add(out.latencyNs);
              o.onLatency?.(out.latencyNs);
              const name = actionName(out.verdict.action);
              verdicts[name] = (verdicts[name] ?? 0) + 1;
              if (out.verdict.action === ACTION.KILL && o.onKill === 'stop' && !dead.has(idx)) {
                // A VMM terminates the VM: every vCPU stops and the plugin session ends. Told
                // before the session is closed: a short grace's SIGKILL may come during the close.
                dead.add(idx);
                killed.push(client.opts.vmId);
                o.onKilled?.(client.opts.vmId);
                await client.close();
              }
              if (perVcpuGapMs > 0) {
                next += perVcpuGapMs;
                const wait = next - Date.now();
                if (wait > 0) await new Promise((r) => setTimeout(r, wait));
              }
            }
          })(),
        );
      }
    });
    await Promise.all(loops);
    const durationMs = Number(process.hrtime.bigint() - start) / 1e6;
    summary = {
      vms: o.vms,
      vcpus: o.vcpus,
      sent,
      answered,
      fallbacks: 0,
      replayed: 0,
      lateVerdicts: 0,
      killed,
      verdicts,
      durationMs: Math.round(durationMs),
      eventsPerSecond: Math.round(sent / (durationMs / 1000)),
      latencyUs: latency.percentiles([50, 99, 99.9]),
    };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    for (const a of attachClients) a.close();
    for (const v of standIns) v.close();
  }
  // The plugins' counts are read once they are closed: closing reads what the daemon sent last,
  // the echo of a replay among it (a replay counts as done at its echo).
  const done = summary as SimulationSummary;
  done.fallbacks = clients.reduce((n, c) => n + c.stats.fallbacks, 0);
  done.replayed = clients.reduce((n, c) => n + c.stats.replayed, 0);
  done.lateVerdicts = clients.reduce((n, c) => n + c.stats.lateVerdicts, 0);
  return done;
}
