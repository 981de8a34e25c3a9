/**
 * clearAmbientCapabilities: a daemon given CAP_KILL through its ambient set (a unit's
 * AmbientCapabilities= with User=) keeps it, and the programs it starts (migration hooks) no longer
 * get it. Run as the unit would run it: uid 65534 with CAP_KILL ambient, set up by setpriv(1).
 */
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { nextEvent, within } from '../helpers/wait.js';

/** Its own CapEff and CapAmb, and a child's, before and after the call. */
const PROBE = `
import { clearAmbientCapabilities } from ${JSON.stringify(
  fileURLToPath(new URL('../../kvm/capabilities.ts', import.meta.url)),
)};
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
const caps = (status) => Object.fromEntries(
  ['CapEff', 'CapAmb'].map((k) => [k, new RegExp('^' + k + ':\\\\s*(\\\\w+)$', 'm').exec(status)[1]]),
);
const own = () => caps(readFileSync('/proc/self/status', 'utf8'));
const child = () => caps(execFileSync('cat', ['/proc/self/status'], { encoding: 'utf8' }));
const before = { own: own(), child: child() };
clearAmbientCapabilities();
console.log(JSON.stringify({ before, after: { own: own(), child: child() } }));
`;

const KILL = '0000000000000020';
const NONE = '0000000000000000';

test('the daemon keeps CAP_KILL and the programs it starts no longer inherit it', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to run the probe as uid 65534 with CAP_KILL');
  const child = spawnOwned(
    'setpriv',
    [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      '--inh-caps=+kill',
      '--ambient-caps=+kill',
      process.execPath,
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      PROBE,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.after(() => killOwned(child, 'the probe'));
  const [line] = await nextEvent<[string]>(
    createInterface({ input: child.stdout as NodeJS.ReadableStream }),
    'line',
    'the probe to answer',
  );
  assert.deepEqual(JSON.parse(line), {
    // As the unit starts it: CAP_KILL effective and ambient, and a child gets it too.
    before: { own: { CapEff: KILL, CapAmb: KILL }, child: { CapEff: KILL, CapAmb: KILL } },
    after: { own: { CapEff: KILL, CapAmb: NONE }, child: { CapEff: NONE, CapAmb: NONE } },
  });
  assert.deepEqual(await within('the probe to exit', exitOf(child)), { code: 0, signal: null });
});
