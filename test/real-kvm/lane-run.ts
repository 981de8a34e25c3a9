/**
 * Runs the lane for the test: prepares and boots each kernel (both at once: one emulated CPU
 * each), drives the VMM's phases from the host (the kill check, SIGSTOP/SIGCONT of the built-in
 * daemon), and collects what the VMM reported and what the daemons stored and counted. Every
 * process started is stopped by `stopAllLanes`, whatever state it is in.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { seawallCli } from '../../scripts/real-kvm/daemon.js';
import type { KernelLine } from '../../scripts/real-kvm/kernels.js';
import { bootLane, type LaneBoot } from '../../scripts/real-kvm/lane.js';
import type { LaneRun, Step } from './lane-reports.js';
import { prepareKernel } from './lane-setup.js';

const run = promisify(execFile);
export const POLICY = new URL('./lane-policy.yaml', import.meta.url).pathname;
export const LINES: KernelLine[] = ['6.1', '7.x'];

/** Drives one boot through its phases; the host-side actions happen at the VMM's `wait` reports. */
async function drive(boot: LaneBoot): Promise<LaneRun> {
  const c = boot.control;
  const waitPhase = (phase: string, ms: number) =>
    c.waitFor((r) => r.t === 'wait' && r.phase === phase, ms, `wait ${phase}`);
  await waitPhase('killed', 300_000);
  // The VMM serves lane-policy-peer too, so ending the killed VM's session (GOODBYE VM_EXITING)
  // does not end the kill: its outcome is decided when the grace (30 s) ends, from the kill's
  // start. The poll outlasts the grace by a minute, for a busy machine's late timers.
  const killedAt = Date.now();
  const killMetrics = await until(
    () => boot.policy.metrics(),
    (m) => /seawall_kills_total\{outcome="[a-z]+"\} 1/.test(m),
    90_000,
  );
  const killOutcomeAfterMs = Date.now() - killedAt;
  const vmsDuringKill = await boot.policy.query(['vms']);
  c.go();
  await waitPhase('daemon-stopped', 90_000);
  boot.builtin.proc.kill('SIGSTOP');
  c.go();
  await waitPhase('daemon-resumed', 90_000);
  boot.builtin.proc.kill('SIGCONT');
  c.go();
  await c.waitFor((r) => r.t === 'done', 180_000, 'done');
  const exit = await Promise.race([
    boot.qemu.exited,
    new Promise<string>((r) => setTimeout(() => r('running'), 30_000)),
  ]);
  return {
    reports: c.reports,
    killMetrics,
    killOutcomeAfterMs,
    vmsDuringKill,
    qemuExit: exit,
    builtinEvents: (await boot.builtin.query(['events'])) as LaneRun['builtinEvents'],
    policyEvents: (await boot.policy.query(['events'])) as LaneRun['policyEvents'],
    builtinMetrics: await boot.builtin.metrics(),
    policyMetrics: await boot.policy.metrics(),
  };
}

/** Polls `get` until `ok` or the deadline: for counts the daemon updates after the fact. */
async function until<T>(get: () => Promise<T>, ok: (v: T) => boolean, deadlineMs: number): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const v = await get();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const explained = new Map<string, Promise<Explained>>();
export interface Explained {
  vcpuEvents: { hex: string } | null;
  guest: { vectorOffset: number; esr: string; esrOnLinux61: string; far: string } | null;
  decision: { rule: string };
}

/** `seawall policy explain` for the event a step produced, as the daemon received it (the same
 * event on both kernels is explained once). */
export function explain(policy: string | null, s: Step, emulate: boolean): Promise<Explained> {
  const event: Record<string, unknown> = {
    kind: s.kind,
    vm: { id: s.vm, labels: { lane: 'real-kvm' } },
    vcpu: s.vcpu,
  };
  if (s.kind === 'nisv') event.esr = s.f[0];
  if (s.kind === 'sigbus') event.sigbusCode = 'BUS_MCEERR_AR';
  event.gpa = s.kind === 'nisv' ? s.f[1] : s.kind === 'sigbus' ? s.f[3] : s.f[0];
  event.gva = event.gpa; // the guest runs with its MMU off: VA = IPA
  const args = [
    seawallCli(),
    'policy',
    'explain',
    '--policy',
    policy ?? 'policies/examples/default.yaml',
    '--event',
    JSON.stringify(event),
  ];
  if (emulate) args.push('--emulate');
  const key = args.join('\0');
  let p = explained.get(key);
  if (!p) {
    p = run(process.execPath, args, { timeout: 60_000 }).then(
      ({ stdout }) => JSON.parse(stdout) as Explained,
    );
    explained.set(key, p);
  }
  return p;
}

export interface LaneResult {
  r: LaneRun;
  note: string;
}

const cleanups: (() => Promise<void>)[] = [];
let stopping = false;

/** Stops every daemon and QEMU the lanes started, and removes their directories. */
export async function stopAllLanes(): Promise<void> {
  stopping = true;
  for (const c of cleanups) await c();
}

/** Prepares, boots and drives one kernel; every process it starts is stopped by the file's after hook. */
async function laneRun(line: KernelLine, qemu: string): Promise<LaneResult> {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-lane-'));
  let boot: LaneBoot | null = null;
  cleanups.push(async () => {
    await boot?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const t0 = Date.now();
  const { kernel, initrd } = await prepareKernel(line, dir);
  const t1 = Date.now();
  if (stopping) throw new Error('the test ended before the boot');
  boot = await bootLane({ dir, qemu, kernel: kernel.image, initrd, policyFile: POLICY });
  if (stopping) await boot.stop(); // the after hook ran while QEMU was starting
  try {
    const r = await drive(boot);
    const note = `${kernel.pkg} ${kernel.version} (${kernel.suite}), ${kernel.modules.length} modules; prepared in ${t1 - t0} ms, booted and ran every scenario in ${Date.now() - t1} ms; the kill's outcome counted ${r.killOutcomeAfterMs} ms after the VMM's kill report`;
    return { r, note };
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- console ---\n${boot.qemu.console.slice(-60).join('\n')}`);
  }
}

const lanes = new Map<KernelLine, Promise<LaneResult>>();
/** Both kernels boot at once (one emulated CPU each), so the lane costs about one boot's time. */
export function lane(line: KernelLine, qemu: string): Promise<LaneResult> {
  if (lanes.size === 0) {
    for (const l of LINES) {
      const p = laneRun(l, qemu);
      p.catch(() => {}); // awaited by its own test
      lanes.set(l, p);
    }
  }
  return lanes.get(line) as Promise<LaneResult>;
}
