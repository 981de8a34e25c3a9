/**
 * The config file's bounds: a value the daemon could not use — a u32 wire field past 2^32, a timer
 * past what Node can wait — is refused at start with its key, not found out by every VM later.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readConfigFile } from '../../daemon/config.js';

const dir = mkdtempSync(join(tmpdir(), 'seawall-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function read(yaml: string) {
  const path = join(dir, 'config.yaml');
  writeFileSync(path, yaml);
  return readConfigFile(path);
}

test('heartbeatMs, limits.maxInFlight and retention.intervalMs past what the daemon can use are refused', () => {
  // 5e9 ms: every HELLO was refused ("internal error … out of range") when WELCOME was encoded.
  assert.throws(() => read('heartbeatMs: 5000000000\n'), /heartbeatMs: Too big/);
  assert.throws(() => read('limits: { maxInFlight: 4294967296 }\n'), /limits\.maxInFlight: Too big/);
  // 3e9 ms: Node ran the retention timer every millisecond.
  assert.throws(() => read('retention: { intervalMs: 3000000000 }\n'), /retention\.intervalMs: Too big/);
  const ok = read(
    'heartbeatMs: 2147483647\nretention: { intervalMs: 2147483647 }\nlimits: { maxInFlight: 65536 }\n',
  );
  assert.deepEqual(
    [ok.heartbeatMs, ok.retention.intervalMs, ok.limits.maxInFlight],
    [2 ** 31 - 1, 2 ** 31 - 1, 65536],
  );
});

test('a configuration path that names a FIFO or a device is refused at once, not read', () => {
  const fifo = join(dir, 'config.fifo');
  execFileSync('mkfifo', [fifo]);
  // A start used to wait for a writer on the FIFO for ever, and read /dev/zero until memory ran out.
  assert.throws(
    () => readConfigFile(fifo),
    /config: cannot read .*config\.fifo: not a regular file \(a FIFO\)/,
  );
  assert.throws(() => readConfigFile('/dev/zero'), /not a regular file \(a device\)/);
});
