/**
 * The C plugin's check of an INJECT verdict's image against its HELLO (docs/protocol.md §5.1,
 * INJECT): what only the C library reports about a refusal. The conformance suite holds it to every
 * image vector (test/protocol/conformance/image-vectors.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runFile as run } from '../helpers/processes.js';
import { cBuildDir, fixtureBinary } from './c-fixtures.js';

cBuildDir(); // made here, at the top, so that it is removed after the file's tests, not the first one's

test('an INJECT image with a reserved byte set: the fallback, counted and named, the connection dropped, the exit replayed', async (t) => {
  const bin = await fixtureBinary(t, 'refused-image');
  if (!bin) return;
  const { stdout } = await run(bin, [], { timeout: 30_000 });
  assert.deepEqual(stdout.trim().split('\n'), [
    'session sent=hello/1.1',
    'refused r=1 source=1 byte40=0 refused=1 rule=reserved', // r=1: the fallback answers
    'dropped connected=0 kept=1 scheduled=1 sent=sea1',
    'reconnect sent=hello/1.1 sea1r hb',
  ]);
});
