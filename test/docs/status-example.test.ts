/**
 * docs/operations.md's `seawall status` example is what the command prints: the example's figures,
 * put in a status answer, come out of formatStatus line for line — its policy line shows the
 * policy version, not a file's SHA-256.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { formatStatus } from '../../cli/commands/status.js';
import type { StatusResult } from '../../control/index.js';

const HEALTHY = { healthy: true, error: null, sinceMs: null } as const;
const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');

test('the status example in docs/operations.md is formatStatus’s output', () => {
  const block = /```console\n\$ seawall status\n([\s\S]*?)\n```/.exec(doc)?.[1];
  assert.ok(block, 'the example');
  const at = (iso: string) => Date.parse(iso);
  const session = (id: string, vm: string, vmmPid: number, vcpus: number, abi: string, since: string) => ({
    id,
    vm,
    vmmPid,
    vcpus,
    abi,
    openedAtMs: at(since),
  });
  const status: StatusResult = {
    version: '0.1.0',
    pid: 2117,
    startedAtMs: at('2025-06-01T08:00:12Z'),
    uptimeMs: (3 * 24 + 4) * 3_600_000,
    policy: {
      version: 'f44a8df5c141',
      reloads: 2,
      failedReloads: 0,
      lastReloadAtMs: at('2025-06-03T14:10:00Z'),
    },
    sessionCount: 2,
    sessions: [
      session('1', 'vm-7', 3310, 8, 'merged', '2025-06-01T08:00:15Z'),
      session('2', 'vm-12', 3342, 4, 'ext-abt-esr', '2025-06-01T08:01:02Z'),
    ],
    sessionsOmitted: 0,
    events: { decided: 14, replays: 2 },
    store: {
      path: '/var/lib/seawall/events.sqlite',
      events: 212,
      replays: 2,
      vms: 31,
      poisonedPages: 40,
      actions: 12,
      byAction: { inject: 198, kill: 12 },
      oldestMs: null,
      newestMs: null,
      bytes: Math.round(1.2 * 1024 * 1024),
      health: { ...HEALTHY, heldRows: 0, droppedRows: 0, heldUpdates: 0, droppedUpdates: 0 },
    },
  };
  assert.equal(block, formatStatus(status));
});
