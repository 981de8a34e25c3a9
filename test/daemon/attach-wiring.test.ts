import assert from 'node:assert/strict';
import { test } from 'node:test';
import { listenAttach } from '../../daemon/attach-wiring.js';
import { isDaemonError } from '../../daemon/errors.js';

test('an attach socket passed with attach disabled is refused, naming the unit to mask', () => {
  const announced: string[] = [];
  assert.throws(
    () => listenAttach(null, 5, (line) => announced.push(line)),
    (err) =>
      isDaemonError(err, 'SEAWALL_DAEMON_CONFIG') &&
      /fd 5.*attach\.enabled is false.*systemctl mask --now seawall-attach\.socket/.test(
        (err as Error).message,
      ),
  );
  // Attach disabled and nothing passed: nothing to serve, nothing said.
  listenAttach(null, undefined, (line) => announced.push(line));
  assert.deepEqual(announced, []);
});
