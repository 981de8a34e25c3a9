/** The esr and kvm subcommands, run as an operator would: the compiled CLI in a child process. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { WAIT_MS } from '../helpers/wait.js';

const CLI = new URL('../../dist/bin/seawall.js', import.meta.url).pathname;
const run = (...args: string[]) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: WAIT_MS });

test('esr decode 0x92000410 names the abort, IL, FnV and the FSC', () => {
  const r = run('esr', 'decode', '0x92000410');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /EC\s+0x24\s+data abort from a lower exception level/);
  assert.match(r.stdout, /IL\s+1/);
  assert.match(r.stdout, /FnV\s+1\s+FAR is not valid/);
  assert.match(r.stdout, /FSC\s+0x10\s+synchronous external abort/);
});

test('esr decode --json is machine-readable', () => {
  const r = run('esr', 'decode', '0x92000410', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.ec, 0x24);
  assert.equal(j.abort.fnv, true);
  assert.equal(j.abort.fsc, 0x10);
  assert.equal(j.raw, '0x92000410');
});

test('esr decode refuses banana and values over 64 bits as usage errors, with a clear message', () => {
  for (const bad of ['banana', '0x10000000000000000']) {
    const r = run('esr', 'decode', bad);
    assert.equal(r.status, 2);
    assert.match(r.stderr, bad === 'banana' ? /not a number: 'banana'/ : /wider than 64 bits/);
  }
});

test("esr decode: VNCR and CM are a data abort's; an instruction abort's are RES0, a set one flagged", () => {
  const r = run('esr', 'decode', '0x82002110', '0x92000110');
  assert.equal(r.status, 0, r.stderr);
  const [iabt, dabt] = r.stdout.trim().split('\n\n') as [string, string];
  assert.match(iabt, /VNCR +1 +RES0 in an instruction abort: should be 0\n/);
  assert.match(iabt, /CM +1 +RES0 in an instruction abort: should be 0\n/);
  assert.match(dabt, /VNCR +0\n/);
  assert.match(dabt, /CM +1 +cache maintenance\n/);
});

test('esr decode takes several values and decodes each, in the order given', () => {
  const r = run('esr', 'decode', '0x92000410', '0x96000010');
  assert.equal(r.status, 0, r.stderr);
  const blocks = r.stdout.trim().split('\n\n');
  assert.equal(blocks.length, 2);
  assert.match(blocks[0] as string, /^ESR 0x0000000092000410\n\s+EC\s+0x24 /);
  assert.match(blocks[1] as string, /^ESR 0x0000000096000010\n\s+EC\s+0x25 /);
});

test("esr decode --json of several values is an array in the order given; a log's worth in one call", () => {
  const values = Array.from({ length: 2000 }, (_, i) => `0x${(0x92000400 + (i % 64)).toString(16)}`);
  const r = run('esr', 'decode', '--json', ...values);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { raw: string; iss: number }[];
  assert.equal(j.length, values.length);
  assert.deepEqual(
    j.map((e) => e.raw),
    values,
  );
});

test('esr decode with one bad value among good ones prints nothing and names the bad one', () => {
  const r = run('esr', 'decode', '0x92000410', 'banana', '0x96000010');
  assert.equal(r.status, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /'banana'/);
});

test('kvm events: the merged data abort image', () => {
  const r = run('kvm', 'events', '--abi', 'merged', '--kind', 'data');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), `000001${'0'.repeat(122)}`);
});

test('kvm events: an instruction abort on the merged ABI fails naming the ABI', () => {
  const r = run('kvm', 'events', '--abi', 'merged', '--kind', 'instruction');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /merged ABI/);
  assert.equal(r.stdout, '');
});

test('kvm events: ext-abt-esr instruction abort with ISS 0x600', () => {
  const r = run('kvm', 'events', '--abi', 'ext-abt-esr', '--kind', 'instruction', '--iss', '0x600');
  assert.equal(r.status, 0, r.stderr);
  const image = Buffer.from(r.stdout.trim(), 'hex');
  assert.equal(image.length, 64);
  assert.equal(image[3], 1);
  assert.equal(image[4], 1);
  assert.equal(image.readBigUInt64LE(16), 0x600n);
  assert.equal(
    Buffer.concat([image.subarray(0, 3), image.subarray(5, 16), image.subarray(24)]).every((b) => b === 0),
    true,
  );
});

test('kvm events: --iss 0x2000000 is refused as a usage error', () => {
  const r = run('kvm', 'events', '--abi', 'ext-abt-esr', '--kind', 'instruction', '--iss', '0x2000000');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /ISS must fit in ESR bits \[24:0\]/);
});

test('kvm probe exits 0 and, without a device, says it is absent', () => {
  const r = run('kvm', 'probe', '--device', '/nonexistent/kvm');
  assert.equal(r.status, 0);
  assert.match(r.stdout, /\/nonexistent\/kvm is absent/);
  const real = run('kvm', 'probe');
  assert.equal(real.status, 0, real.stderr);
  assert.match(real.stdout, /^KVM: /);
});

test('bad usage exits 2 with the usage text', () => {
  assert.equal(run('kvm', 'events', '--abi', 'x86').status, 2);
  assert.equal(run('nonsense').status, 2);
  assert.equal(run('esr', 'decode', '1', '--bogus').status, 2);
});
