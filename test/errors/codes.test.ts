/**
 * Every error code a folder declares is raised somewhere in the source: a declared code nothing
 * raises is a promise to callers that branch on it and never see it. Codes are read from each
 * `export type …ErrorCode =` union; a raise is the code as a string literal in another source file.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { isSeawallError, SeawallError } from '../../errors/index.js';
import { isKvmError, KvmError } from '../../kvm/index.js';
import { isStoreError, StoreError } from '../../store/index.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const SOURCE_FOLDERS = [
  'errors',
  'kvm',
  'protocol',
  'policies',
  'events',
  'store',
  'actions',
  'attach',
].concat(['control', 'daemon', 'cli', 'metrics', 'systemd', 'vmm']);

function files(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) files(path, out);
    else if (name.endsWith('.ts')) out.push(path);
  }
  return out;
}

const sources = SOURCE_FOLDERS.flatMap((f) => files(join(ROOT, f)));

function declaredCodes(text: string): string[] {
  const codes: string[] = [];
  let inUnion = false;
  for (const line of text.split('\n')) {
    if (/^export type \w+ErrorCode =/.test(line)) inUnion = true;
    if (!inUnion) continue;
    const code = /^\s*(?:\|\s*|export type \w+ErrorCode = )?'(SEAWALL_[A-Z0-9_]+)'/.exec(line);
    if (code) codes.push(code[1] as string);
    if (/;\s*$/.test(line) && !/^\s*(\/\*|\*)/.test(line)) inUnion = false;
  }
  return codes;
}

test('every declared error code is raised somewhere else in the source', () => {
  const texts = new Map(sources.map((f) => [f, readFileSync(f, 'utf8')]));
  const unraised: string[] = [];
  let declared = 0;
  for (const [file, text] of texts) {
    for (const code of declaredCodes(text)) {
      declared++;
      const raised = [...texts].some(([other, t]) => other !== file && t.includes(`'${code}'`));
      if (!raised) unraised.push(`${relative(ROOT, file)}: ${code}`);
    }
  }
  assert.ok(declared > 40, `found only ${declared} declared codes: the scan is broken`);
  assert.deepEqual(unraised, []);
});

test('every folder error is a SeawallError, and the guards narrow by class and code', () => {
  const kvm = new KvmError('SEAWALL_KVM_SYSCALL', 'x', { errno: 5 });
  const store = new StoreError('SEAWALL_STORE_OPEN', 'y');
  assert.equal(kvm.detail.errno, 5);
  assert.ok(kvm instanceof SeawallError && store instanceof SeawallError);
  assert.ok(isSeawallError(kvm) && isSeawallError(store, 'SEAWALL_STORE_OPEN'));
  assert.ok(isKvmError(kvm, 'SEAWALL_KVM_SYSCALL'));
  assert.ok(!isKvmError(kvm, 'SEAWALL_KVM_ESR_INVALID'));
  assert.ok(!isKvmError(store) && !isStoreError(kvm));
  assert.ok(!isSeawallError(new Error('plain')));
});
