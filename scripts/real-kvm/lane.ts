/**
 * One boot of the lane: two seawall daemons on the host (the built-in policy, and the lane's test
 * policy), the control socket, and QEMU with four virtio-serial ports: lane-ctl to the test,
 * seawall-a to the built-in daemon, seawall-b and seawall-c to the test-policy daemon (one VMM
 * process serving two VMs there, as the kill scenario needs). Everything started is stopped by
 * `stop()`, whatever state it is in.
 */
import { join } from 'node:path';
import { LaneControl } from './control.js';
import { type LaneDaemon, startLaneDaemon } from './daemon.js';
import { type RunningQemu, startQemu } from './qemu.js';

export interface LaneBoot {
  control: LaneControl;
  builtin: LaneDaemon;
  policy: LaneDaemon;
  qemu: RunningQemu;
  stop(): Promise<void>;
}

export interface LaneBootOptions {
  dir: string;
  qemu: string;
  kernel: string;
  initrd: string;
  policyFile: string;
}

export async function bootLane(o: LaneBootOptions): Promise<LaneBoot> {
  const started: { stop(): Promise<void> }[] = [];
  const stop = async () => {
    for (const s of started.reverse()) await s.stop().catch(() => {});
  };
  try {
    const control = await LaneControl.listen(join(o.dir, 'ctl.sock'));
    started.push({ stop: () => control.close() });
    const daemons = await Promise.allSettled([
      startLaneDaemon(o.dir, 'builtin'),
      startLaneDaemon(o.dir, 'policy', ['--policy', o.policyFile]),
    ]);
    for (const d of daemons) if (d.status === 'fulfilled') started.push(d.value);
    for (const d of daemons) if (d.status === 'rejected') throw d.reason;
    const [builtin, policy] = daemons.map((d) => (d as PromiseFulfilledResult<LaneDaemon>).value) as [
      LaneDaemon,
      LaneDaemon,
    ];
    const qemu = startQemu(o.qemu, {
      kernel: o.kernel,
      initrd: o.initrd,
      ports: [
        { name: 'lane-ctl', path: join(o.dir, 'ctl.sock') },
        { name: 'seawall-a', path: builtin.socket },
        { name: 'seawall-b', path: policy.socket },
        { name: 'seawall-c', path: policy.socket },
      ],
    });
    started.push({ stop: () => qemu.kill() });
    return { control, builtin, policy, qemu, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
