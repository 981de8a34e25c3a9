/**
 * One simulated VMM process (see fleet-processes.ts): runs its share of the fleet with
 * `onKill: 'stop'` and reports its summary and latency samples to the parent over IPC. When one
 * of its VMs is killed it says so at once, then ends the VM as a real VMM would: the process
 * exits once its last VM is gone, so the daemon's kill enforcement sees the VMM leave.
 */
import { type SimulationOptions, type SimulationSummary, simulate } from './simulator.js';

/** The message a child gets first: its share of the fleet. */
export type ChildJob = Omit<SimulationOptions, 'onClient' | 'until' | 'labelsFor' | 'onKilled'>;

/** What a child reports. */
export type ChildReport =
  | { type: 'killed'; vm: string }
  | { type: 'done'; summary: SimulationSummary; latencyNs: number[] }
  | { type: 'failed'; message: string };

const send = (m: ChildReport) =>
  new Promise<void>((resolve) => {
    if (!process.send) return resolve();
    process.send(m, () => resolve());
  });

// A VMM whose parent went (killed, or ended without ending it) ends too: nobody would read its
// report, and it would go on loading the daemon.
process.once('disconnect', () => process.exit(1));

process.once('message', (job: ChildJob) => {
  const samples: number[] = [];
  void simulate({
    ...job,
    onKill: 'stop',
    onKilled: (vm) => void send({ type: 'killed', vm }),
    onLatency: (ns) => {
      if (samples.length < 200_000) samples.push(Number(ns));
    },
  }).then(
    async (summary) => {
      await send({ type: 'done', summary, latencyNs: samples });
      process.exit(0);
    },
    async (err: Error) => {
      await send({ type: 'failed', message: err.message });
      process.exit(1);
    },
  );
});
