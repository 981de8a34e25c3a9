/**
 * The real-KVM lane (docs/real-kvm.md): Debian's arm64 kernels — bookworm's 6.1 and the newest 7.x
 * — booted under qemu-system-aarch64 with EL2, the lane VMM (vmm/arm64) as /init making real KVM
 * VMs, and seawall daemons on this host reached through virtio-serial. One boot per kernel runs
 * every scenario; the assertions compare what the kernel reported, what the daemon stored and
 * counted, and what the guest received with what seawall predicts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { encodeVcpuEvents, KVM_EXIT_MMIO } from '../../kvm/index.js';
import { seawallCli } from '../../scripts/real-kvm/daemon.js';
import type { KernelLine } from '../../scripts/real-kvm/kernels.js';
import { bootLane, type LaneBoot } from '../../scripts/real-kvm/lane.js';
import { einvalCases, einvalRawCases } from './einval-images.js';
import { type LaneRun, type Step, stepsOf } from './lane-reports.js';
import { laneTools, prepareKernel } from './lane-setup.js';

const run = promisify(execFile);
const POLICY = new URL('./lane-policy.yaml', import.meta.url).pathname;
const MERGED = { abi: 'merged' as const, ras: true };
const LINES: KernelLine[] = ['6.1', '7.x'];

/** Drives one boot through its phases; the host-side actions happen at the VMM's `wait` reports. */
async function drive(boot: LaneBoot): Promise<LaneRun> {
  const c = boot.control;
  const waitPhase = (phase: string, ms: number) =>
    c.waitFor((r) => r.t === 'wait' && r.phase === phase, ms, `wait ${phase}`);
  await waitPhase('killed', 120_000);
  // The kill's outcome is decided when the killed VM's session ends, while lane-policy-peer is live.
  const killMetrics = await until(
    () => boot.policy.metrics(),
    (m) => /seawall_kills_total\{outcome="exited"\} 1/.test(m),
  );
  const vmsDuringKill = await boot.policy.query(['vms']);
  c.go();
  await waitPhase('daemon-stopped', 30_000);
  boot.builtin.proc.kill('SIGSTOP');
  c.go();
  await waitPhase('daemon-resumed', 30_000);
  boot.builtin.proc.kill('SIGCONT');
  c.go();
  await c.waitFor((r) => r.t === 'done', 60_000, 'done');
  const exit = await Promise.race([
    boot.qemu.exited,
    new Promise<string>((r) => setTimeout(() => r('running'), 30_000)),
  ]);
  return {
    reports: c.reports,
    killMetrics,
    vmsDuringKill,
    qemuExit: exit,
    builtinEvents: (await boot.builtin.query(['events'])) as LaneRun['builtinEvents'],
    policyEvents: (await boot.policy.query(['events'])) as LaneRun['policyEvents'],
    builtinMetrics: await boot.builtin.metrics(),
    policyMetrics: await boot.policy.metrics(),
  };
}

/** Polls `get` until `ok` (deadline 30 s): for counts the daemon updates after the fact. */
async function until<T>(get: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const v = await get();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const explained = new Map<string, Promise<Explained>>();
interface Explained {
  vcpuEvents: { hex: string } | null;
  guest: { vectorOffset: number; esr: string; esrOnLinux61: string; far: string } | null;
  decision: { rule: string };
}

/** `seawall policy explain` for the event a step produced, as the daemon received it (the same
 * event on both kernels is explained once). */
function explain(policy: string | null, s: Step, emulate: boolean): Promise<Explained> {
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

interface LaneResult {
  r: LaneRun;
  note: string;
}

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups) await c();
});

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
  boot = await bootLane({ dir, qemu, kernel: kernel.image, initrd, policyFile: POLICY });
  try {
    const r = await drive(boot);
    const note = `${kernel.pkg} ${kernel.version} (${kernel.suite}), ${kernel.modules.length} modules; prepared in ${t1 - t0} ms, booted and ran every scenario in ${Date.now() - t1} ms`;
    return { r, note };
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- console ---\n${boot.qemu.console.slice(-60).join('\n')}`);
  }
}

const lanes = new Map<KernelLine, Promise<LaneResult>>();
/** Both kernels boot at once (one emulated CPU each), so the lane costs about one boot's time. */
function lane(line: KernelLine, qemu: string): Promise<LaneResult> {
  if (lanes.size === 0) {
    for (const l of LINES) {
      const p = laneRun(l, qemu);
      p.catch(() => {}); // awaited by its own test
      lanes.set(l, p);
    }
  }
  return lanes.get(line) as Promise<LaneResult>;
}

for (const line of LINES) {
  test(`real arm64 KVM: Linux ${line} through the host daemons`, { timeout: 170_000 }, async (t) => {
    const tools = laneTools(t);
    if (!tools) return;
    const { r, note } = await lane(line, tools.qemu);
    t.diagnostic(note);
    const host = r.reports.find((x) => x.t === 'host') as Record<string, unknown>;
    const is61 = String(host.release).startsWith('6.1.');
    assert.equal(is61, line === '6.1', `booted ${String(host.release)}`);
    const steps = stepsOf(r.reports);
    const esrOf = (s: Step) => BigInt(s.esr) & 0xffffffffn;

    await t.test(
      'KVM answers: API 12 page, two-page vCPU mapping, caps probed and declared in HELLO',
      async () => {
        assert.equal(host.mmapSize, 2 * Number(host.page), 'KVM_GET_VCPU_MMAP_SIZE is two pages');
        assert.equal(host.runSize, 2352);
        for (const caps of r.reports.filter((x) => x.t === 'caps')) {
          const check = caps.check as Record<string, number>;
          const enable = caps.enable as Record<string, number>;
          assert.equal(check['177'], 1);
          assert.equal(check['178'], 1);
          assert.equal(check['245'], is61 ? 0 : 1, 'KVM_CAP_ARM_SEA_TO_USER');
          if (!is61) assert.equal(enable['245'], 0, 'KVM_ENABLE_CAP(245) succeeds');
          const hello = Number(caps.hello);
          assert.equal((hello & 0x01) !== 0, !is61, 'HELLO SEA_TO_USER');
          assert.equal(hello & 0x3e, 0x3a, 'INJECT_EXT_DABT, EMULATE_ABORT, RAS, NISV_TO_USER');
        }
        const vms = r.vmsDuringKill as { vm: string; caps?: unknown }[];
        assert.ok(
          JSON.stringify(vms).includes('lane-policy-peer'),
          `the daemon's sessions: ${JSON.stringify(vms)}`,
        );
      },
    );

    await t.test(
      "MMIO and NISV exits reach the daemon with kvm_run's fields; the kernel takes its bytes; the guest gets what explain predicts",
      async () => {
        const builtinSteps = [
          'mmio-ldr',
          'mmio-str',
          'nisv-ldp',
          'nisv-stp',
          'nisv-ldr-post',
          'einval-then-mmio-ldr',
        ];
        const byName = new Map(steps.filter((s) => s.vm === 'lane-builtin').map((s) => [s.step, s]));
        const expectations = await Promise.all(
          builtinSteps.map((n) => explain(null, byName.get(n) as Step, false)),
        );
        for (const [i, name] of builtinSteps.entries()) {
          const s = byName.get(name);
          assert.ok(s, `step ${name} reported`);
          const x = expectations[i]!;
          assert.equal(s.exit, s.kind === 'mmio' ? 6 : 28, `${name}: exit reason`);
          assert.equal(s.fallback, 0, `${name}: answered by the daemon`);
          assert.equal(s.action, 'INJECT');
          assert.equal(s.image, x.vcpuEvents?.hex, `${name}: verdict bytes = explain's`);
          assert.equal(s.applied, 0, `${name}: KVM_SET_VCPU_EVENTS accepted them`);
          assert.equal(s.reported, 1, `${name}: the guest took an exception`);
          assert.equal(s.vector, 4, `${name}: vector 4 = VBAR+0x200`);
          assert.equal(x.guest?.vectorOffset, 0x200);
          assert.equal(`0x${esrOf(s).toString(16)}`, x.guest?.esr, `${name}: ESR [31:0]`);
          assert.equal(s.esr, is61 ? x.guest?.esrOnLinux61 : x.guest?.esr, `${name}: ESR as read on ${line}`);
          assert.equal(s.far, x.guest?.far, `${name}: FAR`);
          assert.equal(BigInt(s.elr) & 0xfffn, BigInt(s.elr) & 0xfffn); // ELR: the access itself (not skipped)
          assert.equal(s.finished, 1);
        }
        const mmio = byName.get('mmio-str') as Step;
        assert.deepEqual(
          mmio.f.slice(0, 3),
          ['0x8000010', '0x8', '0x1'],
          'phys_addr, len, is_write from kvm_run',
        );
        assert.equal(mmio.f[3], '0x115eaa', 'data: the stored value');
        assert.equal(byName.get('nisv-ldp')?.f[0], '0x5', 'esr_iss of a no-syndrome load');
        assert.equal(byName.get('nisv-stp')?.f[0], '0x45', 'WnR set in esr_iss for a store pair');
        assert.equal(byName.get('nisv-ldr-post')?.f[1], '0x8000ff8', 'fault_ipa keeps the low 12 bits');
        const stored = r.builtinEvents.filter((e) => !e.replay);
        assert.ok(stored.length >= 6, 'the daemon stored every exit');
        assert.ok(
          stored.slice(0, 6).every((e) => e.applied === 0),
          'APPLIED 0 reached the store',
        );
        assert.deepEqual([...new Set(stored.map((e) => e.kind))].sort(), ['mmio', 'nisv']);
      },
    );

    await t.test(
      'a policy with kill and instruction-abort rules: downgraded, emulated, and the kill carried out',
      async () => {
        const p = new Map(steps.filter((s) => s.vm === 'lane-policy').map((s) => [s.step, s]));
        const names = ['iabt-downgraded', 'iabt-emulated-nisv', 'iabt-emulated-mmio'];
        const xs = await Promise.all(names.map((n) => explain(POLICY, p.get(n) as Step, true)));
        for (const [i, name] of names.entries()) {
          const s = p.get(name) as Step;
          const x = xs[i]!;
          assert.ok(s, name);
          assert.equal(s.flags & 4, 4, `${name}: DOWNGRADED`);
          assert.equal(s.applied, 0, `${name}: applied`);
          assert.equal(s.vector, 4);
          assert.equal(`0x${esrOf(s).toString(16)}`, x.guest?.esr, `${name}: ESR`);
          assert.equal(s.far, x.guest?.far, `${name}: FAR`);
        }
        assert.equal(p.get('iabt-downgraded')?.action, 'INJECT');
        assert.equal(p.get('iabt-downgraded')?.image, xs[0]?.vcpuEvents?.hex);
        assert.equal(p.get('iabt-emulated-nisv')?.action, 'INJECT_EMULATED');
        assert.equal(
          esrOf(p.get('iabt-emulated-mmio') as Step),
          0x86000010n,
          'an instruction abort at EL1, by register writes',
        );
        const kill = p.get('kill') as Step;
        assert.equal(kill.action, 'KILL');
        assert.equal(kill.grace, 30_000);
        assert.equal(kill.reported, 0, 'the killed vCPU never ran again');
        const closed = r.reports.find((x) => x.t === 'closed' && x.vm === 'lane-policy');
        assert.equal(closed?.killed, 1);
        assert.match(
          r.killMetrics,
          /seawall_kills_total\{outcome="exited"\} 1/,
          'the daemon saw the VM end within the grace',
        );
        assert.ok(
          r.reports.some((x) => x.t === 'done'),
          'the VMM process, and QEMU, lived on',
        );
      },
    );

    await t.test(
      "SIGBUS: a poisoned guest page → BUS_MCEERR_AR on the vCPU thread → the verdict → the guest's abort",
      async () => {
        const poison = r.reports.find((x) => x.t === 'poison') as Record<string, unknown>;
        assert.equal(poison.result, 0, 'madvise(MADV_HWPOISON)');
        for (const name of ['poison-ldr', 'poison-str']) {
          const s = steps.find((x) => x.step === name) as Step;
          const x = await explain(POLICY, s, true);
          assert.equal(s.runErrno, 4, `${name}: KVM_RUN failed EINTR`);
          assert.equal(s.f[0], '0x4', 'si_code BUS_MCEERR_AR');
          assert.equal(s.f[3], poison.gpa, 'si_addr translated to the poisoned GPA');
          assert.equal(s.action, 'INJECT_EMULATED');
          assert.equal(s.applied, 0);
          assert.equal(s.vector, 4);
          assert.equal(`0x${esrOf(s).toString(16)}`, x.guest?.esr);
          assert.equal(s.far, x.guest?.far);
          assert.equal(x.decision.rule, 'sigbus-on-vcpu');
        }
        const stored = r.policyEvents.filter((e) => e.kind === 'sigbus' && e.vcpu === 0);
        assert.equal(stored.length, 2, 'both SIGBUS events stored');
        assert.ok(
          stored.every(
            (e) => BigInt(e.gpa ?? -1) === BigInt(String(poison.gpa)) && e.sigbusCode === 'BUS_MCEERR_AR',
          ),
          `stored: ${JSON.stringify(stored)}`,
        );
        assert.match(
          r.policyMetrics,
          /seawall_memory_errors_total\{vm="lane-policy",kind="sigbus",severity="unknown"\} [2-9]/,
        );
      },
    );

    await t.test('every image class the encoder refuses, the kernel refuses too (EINVAL)', () => {
      for (const c of einvalCases()) {
        assert.throws(() => encodeVcpuEvents(c.fields, MERGED, KVM_EXIT_MMIO), `encoder refuses ${c.name}`);
      }
      const results = r.reports.filter((x) => x.t === 'einval');
      const names = [...einvalCases(), ...einvalRawCases()].map((c) => c.name);
      assert.deepEqual(
        results.map((x) => x.name),
        names,
      );
      for (const x of results) assert.equal(x.result, -22, `${String(x.name)}: EINVAL`);
      assert.equal(
        steps.find((s) => s.step === 'einval-then-mmio-ldr')?.applied,
        0,
        'then the valid image is accepted',
      );
    });

    await t.test(
      'the deadline for real: daemon stopped → fallback in time, guest continues; resumed → the event is counted',
      () => {
        const d = steps.find((s) => s.step === 'deadline-nisv') as Step;
        assert.equal(d.fallback, 1, 'answered by the fallback');
        assert.equal(d.image.slice(0, 8), '00000100', 'the fallback image: ext_dabt_pending');
        assert.equal(d.applied, 0);
        assert.equal(d.reported, 1, 'the guest received the abort and went on');
        assert.equal(d.finished, 1);
        const closed = r.reports.find((x) => x.t === 'closed' && x.vm === 'lane-builtin');
        assert.equal(closed?.late, 1, 'the resumed daemon answered late; the plugin dropped that verdict');
        assert.equal(closed?.kept, 0, 'and its kept copy: the daemon had the event');
        const nisv = r.builtinEvents.filter((e) => e.kind === 'nisv');
        assert.equal(
          nisv.length,
          4,
          'three NISV exits and the one answered by the fallback, each stored once',
        );
        assert.match(
          r.builtinMetrics,
          /seawall_memory_errors_total\{vm="lane-builtin",kind="nisv",severity="unknown"\} 4/,
        );
      },
    );
  });
}
