import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  enqueueNotification,
  NOTIFY_QUEUE,
  type Notification,
  type NotificationKind,
} from '../../systemd/notify-queue.js';

/** Queues `[kind, text]` pairs in order and returns the texts waiting. */
function queued(...items: [NotificationKind, string][]): string[] {
  const queue: Notification[] = [];
  for (const [kind, text] of items) enqueueNotification(queue, { kind, text });
  return queue.map((n) => n.text);
}

test('a newer STATUS= replaces every queued one; WATCHDOG=1 waits at most once', () => {
  assert.deepEqual(
    queued(['status', 'a'], ['watchdog', 'W'], ['ready', 'R'], ['status', 'b'], ['watchdog', 'W']),
    ['W', 'R', 'b'],
  );
});

test('EXTEND_TIMEOUT_USEC= replaces one queued since the last state change, not one before it', () => {
  assert.deepEqual(queued(['extend', 'e1'], ['extend', 'e2']), ['e2']);
  assert.deepEqual(queued(['extend', 'e1'], ['ready', 'R'], ['extend', 'e2']), ['e1', 'R', 'e2']);
});

test('state changes keep their order; a repeated READY or RELOADING replaces the queued one', () => {
  assert.deepEqual(queued(['ready', 'R1'], ['status', 's'], ['ready', 'R2']), ['s', 'R2']);
  assert.deepEqual(queued(['reloading', 'L1'], ['reloading', 'L2'], ['ready', 'R']), ['L2', 'R']);
  // Not across another state change: STOPPING=1 stays between.
  assert.deepEqual(queued(['ready', 'R1'], ['state', 'S'], ['ready', 'R2']), ['R1', 'S', 'R2']);
});

test('a reload queued behind a queued reload-and-ready replaces the pair: ready, reloading, ready', () => {
  const reloads: [NotificationKind, string][] = [];
  for (let i = 0; i < 100; i++) reloads.push(['reloading', `L${i}`], ['ready', `R${i}`]);
  assert.deepEqual(queued(['ready', 'R'], ...reloads), ['R', 'L99', 'R99']);
  // A RELOADING=1 whose READY=1 is in flight (not queued) is not paired.
  assert.deepEqual(queued(['ready', 'R'], ['reloading', 'L']), ['R', 'L']);
  assert.deepEqual(queued(['state', 'STOPPING'], ['ready', 'R'], ['reloading', 'L']), ['STOPPING', 'R', 'L']);
});

test('past the bound a new notification is dropped', () => {
  const queue: Notification[] = [];
  for (let i = 0; i < NOTIFY_QUEUE; i++)
    assert.ok(enqueueNotification(queue, { kind: 'state', text: `X=${i}` }));
  assert.equal(enqueueNotification(queue, { kind: 'state', text: 'X=over' }), false);
  assert.equal(queue.length, NOTIFY_QUEUE);
});
