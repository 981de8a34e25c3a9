/**
 * `seawall status` in words: a faulty store says what it holds in memory, and what was dropped
 * past the bound stays on screen after the store is healthy again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatStatus } from '../../cli/commands/status.js';
import type { StatusResult } from '../../control/index.js';
import type { StoreHealth } from '../../store/index.js';

const T = Date.UTC(2026, 11, 2, 9, 0, 0);
const NONE_HELD = { healthy: true, error: null, sinceMs: null } as const;
const ZERO = { heldRows: 0, droppedRows: 0, heldUpdates: 0, droppedUpdates: 0 };

function status(health: Partial<StoreHealth>): StatusResult {
  return {
    version: '0.1.0',
    pid: 4242,
    startedAtMs: T,
    uptimeMs: 60_000,
    policy: { version: 'builtin', reloads: 0, failedReloads: 0, lastReloadAtMs: null },
    sessionCount: 0,
    sessions: [],
    sessionsOmitted: 0,
    events: { decided: 10, replays: 0 },
    store: {
      path: '/var/lib/seawall/events.sqlite',
      events: 10,
      replays: 0,
      vms: 1,
      poisonedPages: 1,
      actions: 10,
      byAction: { inject: 10 },
      oldestMs: T,
      newestMs: T,
      bytes: 4096,
      health: { ...NONE_HELD, ...ZERO, ...health },
    },
  };
}

test('a healthy store that lost nothing adds no line', () => {
  const text = formatStatus(status({}));
  assert.doesNotMatch(text, /FAULTY|LOST/);
});

test('a faulty store says what it holds: answered events and updates', () => {
  const text = formatStatus(
    status({ healthy: false, error: 'ENOSPC\u001b[2J', sinceMs: T, heldRows: 120, heldUpdates: 7 }),
  );
  assert.match(
    text,
    /FAULTY since 2026-12-02T09:00:00\.000Z: ENOSPC.*; 120 answered events and 7 updates held, retried every second/,
  );
  assert.ok(!text.includes('\u001b'), 'the error reaches the terminal escaped');
  assert.doesNotMatch(text, /LOST/);
});

test('what was dropped past the bound is shown while faulty and after the recovery', () => {
  const faulty = formatStatus(
    status({
      healthy: false,
      error: 'gone',
      sinceMs: T,
      heldRows: 200_000,
      droppedRows: 5,
      droppedUpdates: 3,
    }),
  );
  assert.match(faulty, /LOST since start: 5 answered events and 3 updates dropped/);
  const healed = formatStatus(status({ droppedRows: 0, droppedUpdates: 9 }));
  assert.match(healed, /LOST since start: 0 answered events and 9 updates dropped/);
  assert.doesNotMatch(healed, /FAULTY/);
});
