#!/usr/bin/env node
// Shows that the suite notices when two things it depends on are broken: each mutation below is
// applied to the source, the tests that guard it are run, and the check passes only if they fail.
// The source is restored afterwards, also on Ctrl-C. `node scripts/mutation-check.mjs`;
// `--check` only confirms that every mutation still finds its text (test/scripts/ runs it).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const MUTATIONS = [
  {
    what: "the writer thread's inserts disabled",
    file: 'store/writer-thread.ts',
    from: 'parts.push({ rows, updates, seg, damage });',
    to: 'parts.push({ rows: [], updates, seg, damage });',
    tests: ['test/store/write-ahead.test.ts'],
  },
  {
    what: 'the fallback replay disabled (the plugin client sends no replayed event)',
    file: 'vmm/plugin-client.ts',
    from: '...events.map((m) => encodeMessage(m)),',
    to: '...events.slice(0, 0).map((m) => encodeMessage(m)),',
    tests: ['test/daemon/fallback.test.ts', 'test/vmm/'],
  },
];

const stale = (m) => `✖ ${m.what}: '${m.from}' is no longer in ${m.file}; update this script`;

if (process.argv.includes('--check')) {
  const moved = MUTATIONS.filter((m) => !readFileSync(m.file, 'utf8').includes(m.from));
  for (const m of moved) console.log(stale(m));
  if (moved.length === 0) console.log(`every mutation (${MUTATIONS.length}) finds its text`);
  process.exit(moved.length === 0 ? 0 : 1);
}

let restore = null;
const restoreNow = () => {
  if (restore) restore();
  restore = null;
};
process.on('SIGINT', () => {
  restoreNow();
  process.exit(130);
});

let ok = true;
for (const m of MUTATIONS) {
  const original = readFileSync(m.file, 'utf8');
  if (!original.includes(m.from)) {
    console.log(stale(m));
    ok = false;
    continue;
  }
  restore = () => writeFileSync(m.file, original);
  writeFileSync(m.file, original.replace(m.from, m.to));
  try {
    const res = spawnSync(process.execPath, ['scripts/run-tests.mjs', ...m.tests], {
      encoding: 'utf8',
      env: { ...process.env, SEAWALL_COVERAGE: '0', SEAWALL_TEST_WAIT_MS: '10000' },
    });
    const failed = (res.stdout.match(/^ℹ fail (\d+)/m) ?? [])[1] ?? '?';
    if (res.status !== 0) console.log(`✔ ${m.what}: ${failed} tests fail, as they must`);
    else {
      console.log(`✖ ${m.what}: every test still passes`);
      ok = false;
    }
  } finally {
    restoreNow();
  }
}
process.exit(ok ? 0 : 1);
