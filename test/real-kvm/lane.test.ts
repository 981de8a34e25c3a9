/**
 * The real-KVM lane (docs/real-kvm.md): Debian's arm64 kernels — bookworm's 6.1 and the newest 7.x
 * — booted under qemu-system-aarch64 with EL2, the lane VMM (vmm/arm64) as /init making real KVM
 * VMs, and seawall daemons on this host reached through virtio-serial. One boot per kernel runs
 * every scenario; the assertions compare what the kernel reported, what the daemon stored and
 * counted, and what the guest received with what seawall predicts.
 *
 * Longer than 350 lines: one boot per kernel feeds every subtest, so the assertions on its
 * scenarios live beside the loop that runs it.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import {
  decodeExit,
  encodeVcpuEvents,
  KVM_EXIT_MMIO,
  KVM_RUN_EXIT_RECORD_END,
  kvmVcpuIndexOfLink,
} from '../../kvm/index.js';
import { einvalCases, einvalRawCases } from './einval-images.js';
import { type Step, stepsOf } from './lane-reports.js';
import { type Explained, explain, LINES, lane, POLICY, stopAllLanes } from './lane-run.js';
import { laneTools } from './lane-setup.js';

const MERGED = { abi: 'merged' as const, ras: true };
/**
 * Both boots run side by side in about 90–130 s on a quiet 2-core machine (docs/real-kvm.md); under
 * a CPU hog the emulated kernels get half the CPU and take twice that. The deadline is for a lane
 * that is stuck, not slow: the runner's own per-file limit (scripts/run-tests.mjs) is above it.
 */
const LANE_TIMEOUT_MS = 480_000;
after(stopAllLanes);

/** A SIGBUS step of lane-policy-peer: KVM_RUN's EINTR, BUS_MCEERR_AR at `gpa`, decided by `rule`. */
async function peerSigbus(s: Step, rule: string, gpa: unknown): Promise<Explained> {
  const x = await explain(POLICY, s, true);
  assert.equal(x.decision.rule, rule, `${s.step}: rule`);
  assert.equal(s.runErrno, 4, `${s.step}: KVM_RUN failed EINTR`);
  assert.equal(s.f[0], '0x4', `${s.step}: si_code BUS_MCEERR_AR`);
  assert.equal(s.f[3], gpa, `${s.step}: the GPA of its page`);
  return x;
}

for (const line of LINES) {
  test(`real arm64 KVM: Linux ${line} through the host daemons`, { timeout: LANE_TIMEOUT_MS }, async (t) => {
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
      },
    );

    await t.test(
      "another process passed a vCPU fd (SCM_RIGHTS) maps the kernel's kvm_run, and its vCPU and VM ioctls fail EIO",
      () => {
        const peers = r.reports.filter((x) => x.t === 'peer');
        assert.deepEqual(
          peers.map((p) => p.step).sort(),
          ['mmio-ldr', 'nisv-ldp'],
          `a probe at an MMIO and at an NISV exit: ${JSON.stringify(peers)}`,
        );
        for (const p of peers) {
          const name = String(p.step);
          const s = steps.find((x) => x.vm === 'lane-builtin' && x.step === name) as Step;
          assert.equal(p.answered, 1, `${name}: the child answered`);
          assert.equal(p.fds, 1, `${name}: one fd came with the message`);
          assert.equal(
            kvmVcpuIndexOfLink(String(p.link)),
            p.vcpu,
            `${name}: /proc names it ${String(p.link)}`,
          );
          assert.equal(p.mmapSize, host.mmapSize, `${name}: its own /dev/kvm gives the same mapping size`);
          assert.equal(p.mmap, 0, `${name}: mmap(PROT_READ, MAP_SHARED, offset 0) from another process`);
          assert.equal(p.same, 1, `${name}: its mapping shows the VMM's kvm_run byte for byte`);
          const head = Buffer.from(String(p.head), 'hex');
          assert.equal(head.length, KVM_RUN_EXIT_RECORD_END);
          const exit = decodeExit(head);
          if (s.kind === 'mmio') {
            assert.equal(exit.reason, 'mmio', `${name}: exit decoded`);
            if (exit.reason !== 'mmio') return;
            assert.deepEqual(
              [exit.physAddr, BigInt(exit.len), BigInt(exit.isWrite)],
              s.f.slice(0, 3).map(BigInt),
              `${name}: phys_addr, len, is_write as the VMM read them`,
            );
          } else {
            assert.equal(exit.reason, 'arm-nisv', `${name}: exit decoded`);
            if (exit.reason !== 'arm-nisv') return;
            assert.deepEqual(
              [exit.esrIss, exit.faultIpa],
              s.f.slice(0, 2).map(BigInt),
              `${name}: esr_iss, fault_ipa`,
            );
          }
          for (const call of ['run', 'setEvents', 'getReg', 'vmCheck'])
            assert.equal(p[call], -5, `${name}: ${call} from another process fails EIO`);
          assert.equal(s.applied, 0, `${name}: the VMM still applied its verdict after the probe`);
        }
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
          assert.equal(s.elr, s.pc, `${name}: ELR = the faulting access (KVM does not skip it)`);
          assert.equal(s.finished, 1);
        }
        const mmio = byName.get('mmio-str') as Step;
        assert.deepEqual(
          mmio.f.slice(0, 3),
          ['0x8000010', '0x8', '0x1'],
          'phys_addr, len, is_write from kvm_run',
        );
        assert.equal(mmio.f[3], '0x115eaa', 'data: the stored value');
        for (const name of ['mmio-ldr', 'einval-then-mmio-ldr'])
          assert.equal(
            byName.get(name)?.f[3],
            '0x0',
            `${name}: a load's event carries no data (kvm_run's still holds the previous exit's bytes)`,
          );
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
      'a policy with instruction-abort rules: downgraded, and emulated with FAR_EL1 0 after MMIO and NISV exits',
      async () => {
        const p = new Map(steps.filter((s) => s.vm === 'lane-policy').map((s) => [s.step, s]));
        const names = [
          'iabt-downgraded',
          'iabt-emulated-nisv',
          'iabt-emulated-mmio',
          'iabt-walk-emulated-nisv',
          'iabt-walk-emulated-mmio',
        ];
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
          assert.equal(s.elr, s.pc, `${name}: ELR = the faulting access`);
        }
        assert.equal(p.get('iabt-downgraded')?.action, 'INJECT');
        assert.equal(p.get('iabt-downgraded')?.image, xs[0]?.vcpuEvents?.hex);
        assert.equal(p.get('iabt-emulated-nisv')?.action, 'INJECT_EMULATED');
        assert.equal(
          esrOf(p.get('iabt-emulated-mmio') as Step),
          0x86000410n,
          'an instruction abort at EL1, by register writes; FnV: an MMIO exit gives the VMM no guest VA',
        );
        for (const name of ['iabt-walk-emulated-nisv', 'iabt-walk-emulated-mmio']) {
          const s = p.get(name) as Step;
          assert.equal(s.action, 'INJECT_EMULATED', name);
          assert.equal(
            BigInt(s.vesr) & 0x400n,
            0n,
            `${name}: FSC 0x14 has no FnV, so the verdict leaves it clear`,
          );
          assert.equal(
            s.far,
            '0x0',
            `${name}: FAR_EL1 0 all the same: the exit's address is a guest physical one (docs/protocol.md §5.1)`,
          );
        }
      },
    );

    await t.test(
      'the kill carried out: the VM stops, the daemon sees it end while the same QEMU serves another',
      () => {
        const kill = steps.find((s) => s.vm === 'lane-policy' && s.step === 'kill') as Step;
        assert.ok(kill, 'the kill step reported');
        assert.equal(kill.action, 'KILL');
        assert.equal(kill.grace, 30_000);
        assert.equal(kill.reported, 0, 'the killed vCPU took no exception');
        assert.equal(kill.finished, 0, 'the killed vCPU never ran again: its access never completed');
        const policyLines = r.reports.filter((x) => x.t === 'step' && x.vm === 'lane-policy');
        assert.equal(policyLines.at(-1)?.step, 'kill', 'no step of the killed VM after the kill');
        const closed = r.reports.find((x) => x.t === 'closed' && x.vm === 'lane-policy');
        assert.equal(closed?.killed, 1);
        const vms = r.vmsDuringKill as Record<string, unknown>[];
        const peer = vms.find((v) => JSON.stringify(v).includes('"lane-policy-peer"'));
        assert.equal(peer?.connected, true, `the same QEMU still served another VM: ${JSON.stringify(vms)}`);
        assert.match(
          r.killMetrics,
          /seawall_kills_total\{outcome="exited"\} 1/,
          `the daemon saw the VM end within the grace (the outcome counted ${r.killOutcomeAfterMs} ms after the VMM's kill report)`,
        );
        assert.ok(
          r.reports.some((x) => x.t === 'done'),
          'the VMM process, and QEMU, lived on',
        );
        assert.equal(r.qemuExit, 0, 'and QEMU exited 0 once the VMM powered the machine off');
      },
    );

    await t.test(
      "SIGBUS: a poisoned guest page → BUS_MCEERR_AR on the vCPU thread → the verdict → the guest's abort",
      async () => {
        const poison = r.reports.find((x) => x.t === 'poison' && x.vm === 'lane-policy') as Record<
          string,
          unknown
        >;
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
          assert.equal(s.elr, s.pc, `${name}: ELR = the access that hit the poison`);
          assert.equal(x.decision.rule, 'sigbus-on-vcpu');
        }
        const stored = r.policyEvents.filter(
          (e) => e.vm === 'lane-policy' && e.kind === 'sigbus' && e.vcpu === 0,
        );
        assert.equal(stored.length, 2, 'both SIGBUS events stored');
        assert.ok(
          stored.every(
            (e) => BigInt(e.gpa ?? -1) === BigInt(String(poison.gpa)) && e.sigbusCode === 'BUS_MCEERR_AR',
          ),
          `stored: ${JSON.stringify(stored)}`,
        );
        // 7.x also sends one SIGBUS during the madvise, outside any vCPU (docs/real-kvm.md).
        assert.match(
          r.policyMetrics,
          new RegExp(
            `seawall_memory_errors_total\\{vm="lane-policy",kind="sigbus",severity="unknown"\\} ${is61 ? 2 : 3}\n`,
          ),
        );
      },
    );

    await t.test(
      'SIGBUS on the peer VM: an emulated abort whose ESR leaves FnV clear gets FAR_EL1 0, never the GPA',
      async () => {
        const poisons = r.reports.filter((x) => x.t === 'poison' && x.vm === 'lane-policy-peer');
        assert.deepEqual(
          poisons.map((x) => x.result),
          [0, 0],
          'madvise(MADV_HWPOISON) on both pages',
        );
        const walk = steps.find(
          (s) => s.vm === 'lane-policy-peer' && s.step === 'poison-walk-emulated',
        ) as Step;
        assert.ok(walk, 'poison-walk-emulated reported');
        const x = await peerSigbus(walk, 'sigbus-walk-emulated', poisons[0]?.gpa);
        assert.equal(walk.action, 'INJECT_EMULATED');
        assert.equal(BigInt(walk.vesr) & 0x400n, 0n, 'FSC 0x14: the verdict leaves FnV clear');
        assert.equal(walk.applied, 0);
        assert.equal(walk.vector, 4);
        assert.equal(`0x${esrOf(walk).toString(16)}`, x.guest?.esr);
        assert.equal(walk.far, x.guest?.far);
        assert.equal(
          walk.far,
          '0x0',
          'a SIGBUS gives no guest VA, and FAR_EL1 never holds a GPA in its place',
        );
        assert.equal(walk.elr, walk.pc);
        assert.equal(walk.finished, 1);
      },
    );

    await t.test(
      'RESUME after an action-required SIGBUS stops the vCPU, and its step is still reported',
      async () => {
        const poisons = r.reports.filter((x) => x.t === 'poison' && x.vm === 'lane-policy-peer');
        const peer = steps.filter((s) => s.vm === 'lane-policy-peer');
        assert.deepEqual(
          peer.map((s) => s.step),
          ['poison-walk-emulated', 'poison-resume'],
          'one line per step, the stopped one included',
        );
        const resume = peer[1] as Step;
        await peerSigbus(resume, 'sigbus-resume', poisons[1]?.gpa);
        assert.equal(resume.action, 'RESUME');
        assert.equal(resume.reported, 0, 'nothing injected');
        assert.equal(
          resume.finished,
          0,
          'the vCPU stopped at the poisoned access: resuming would fault again',
        );
        const closed = r.reports.find((x) => x.t === 'closed' && x.vm === 'lane-policy-peer');
        assert.equal(closed?.killed, 0, 'a stopped vCPU is not a killed VM');
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
        assert.deepEqual(
          nisv.filter((e) => e.fallbackAction !== null).map((e) => [e.replay, e.fallbackAction]),
          [[false, 1]],
          'the late verdict was answered with APPLIED FALLBACK: the record shows the fallback INJECT',
        );
        assert.match(
          r.builtinMetrics,
          /seawall_memory_errors_total\{vm="lane-builtin",kind="nisv",severity="unknown"\} 4/,
        );
      },
    );
  });
}
