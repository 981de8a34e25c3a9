/**
 * The poisoned pages a migration hook is sent by the real daemon (`seawall daemon`): after a
 * restart they still include the pages stored before it, and never an MMIO exit's address.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CAP } from '../../protocol/index.js';
import { PluginClient } from '../../vmm/plugin-client.js';
import type { ExitReport } from '../../vmm/plugin-types.js';
import { PATIENT_DEADLINE_MS, type RunningDaemon, removeDir, startDaemon } from '../helpers/daemon.js';
import { until } from '../helpers/wait.js';

const POLICY = `version: 1
name: payload-test
hooks: [orch]
rules:
  - name: gold-migrate
    match: { labels: { tier: gold }, kind: [sea] }
    action: { type: migrate, hook: orch, meanwhile: { abort: data }, onFailure: { type: none } }
default:
  action: { type: inject, abort: data }
`;

const DABT_SEA = (0x24n << 26n) | (1n << 25n) | 0x10n;
const sea = (gpa: bigint): ExitReport => ({
  type: 'sea',
  vcpu: 0,
  kvmFlags: 1n,
  esr: DABT_SEA,
  gva: 0n,
  gpa,
});
const mmio = (physAddr: bigint): ExitReport => ({
  type: 'mmio',
  vcpu: 0,
  physAddr,
  data: new Uint8Array(8),
  len: 4,
  isWrite: false,
});

type Body = { vm: { id: string }; poisonedPages: string[]; poisonedPagesTruncated: boolean };
const bodies: Body[] = [];
const http = createServer((req, res) => {
  let d = '';
  req.on('data', (c: Buffer) => {
    d += c.toString();
  });
  req.on('end', () => {
    bodies.push(JSON.parse(d) as Body);
    res.writeHead(202).end();
  });
});

const daemons: RunningDaemon[] = [];
let dir = '';
after(async () => {
  for (const d of daemons) await d.kill();
  if (dir) removeDir(dir);
  http.closeAllConnections();
  http.close();
});

async function send(daemon: RunningDaemon, tier: string, exits: ExitReport[]): Promise<void> {
  const c = new PluginClient({
    socket: daemon.socket,
    vmId: 'vm-r',
    labels: { tier },
    vcpuCount: 1,
    caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS,
    deadlineMs: PATIENT_DEADLINE_MS,
  });
  await c.connect();
  try {
    for (const exit of exits) await c.handleExit(exit);
  } finally {
    await c.close();
  }
}

test('after a restart the payload lists the pages stored before it, and no MMIO address', async () => {
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  dir = mkdtempSync(join(tmpdir(), 'seawall-payload-'));
  writeFileSync(join(dir, 'policy.yaml'), POLICY);
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/migrate`;
  writeFileSync(
    join(dir, 'config.yaml'),
    `actions:\n  hooks:\n    orch: { type: http, url: "${url}", timeoutMs: 5000, retries: 0 }\n`,
  );
  const args = ['--config', join(dir, 'config.yaml'), '--policy', join(dir, 'policy.yaml')];
  const first = await startDaemon({ dir, args });
  daemons.push(first);
  // Silver: injected, not migrated; the pages go to the store.
  await send(first, 'silver', [sea(0x7000n), sea(0x8000n)]);
  assert.equal(await first.stop(), 0);

  const second = await startDaemon({ dir, args });
  daemons.push(second);
  // An MMIO exit has a GPA too, of a device: never a poisoned page.
  await send(second, 'gold', [mmio(0xb000n), sea(0xa000n)]);
  await until('the migration request of vm-r', () => bodies.some((b) => b.vm.id === 'vm-r'));
  const body = bodies.find((b) => b.vm.id === 'vm-r') as Body;
  assert.deepEqual([...body.poisonedPages].sort(), ['0x7000', '0x8000', '0xa000']);
  assert.equal(body.poisonedPagesTruncated, false);
});
