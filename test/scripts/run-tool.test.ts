/**
 * test/daemon/e2e/run-cli.ts `runTool`, which every test feeding a program on stdin uses (promtool
 * fed a scrape): a program that exits before reading what it was given ends with its status, as
 * it would in a shell, instead of failing the test with the EPIPE of the write that lost the race.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runTool } from '../daemon/e2e/run-cli.js';

test('a program that exits without reading its stdin ends with its status, not an EPIPE', async () => {
  // 8 MiB: more than a pipe holds, so the write meets the closed pipe whatever the timing.
  const r = await runTool('/bin/sh', ['-c', 'exit 3'], { stdin: 'x'.repeat(8 << 20) });
  assert.deepEqual([r.code, r.signal], [3, null]);
});

test('without stdin given, the program reads end of file at once', async () => {
  const r = await runTool('/bin/sh', ['-c', 'wc -c']);
  assert.deepEqual([r.code, r.stdout.trim()], [0, '0']);
});
