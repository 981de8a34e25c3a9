/**
 * The config file's bounds: a value the daemon could not use — a u32 wire field past 2^32, a timer
 * past what Node can wait — is refused at start with its key, not found out by every VM later.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { attachServerOptions } from '../../attach/index.js';
import { readConfigFile, resolveConfig } from '../../daemon/config.js';

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

test('a metrics address the --metrics flag refuses is refused in the file too, at once', () => {
  // Both were accepted, then failed at start after the store was opened: one out of range, one
  // looked up by DNS.
  assert.throws(() => read("metrics: '127.0.0.1:99999'\n"), /metrics: host:port/);
  assert.throws(() => read("metrics: '300.1.1.1:9464'\n"), /metrics: host:port/);
  assert.throws(() => read("metrics: 'example:9464'\n"), /metrics: host:port/);
  // Brackets around what is not an IPv6 address: looked up by DNS too (ENOTFOUND at start).
  for (const bad of ['[:]:9464', '[1:2]:9464', '[1.2.3.4]:9464'])
    assert.throws(() => read(`metrics: '${bad}'\n`), /metrics: host:port/, bad);
  for (const ok of ['127.0.0.1:0', '[::1]:9464', '[::]:9464', '[::ffff:127.0.0.1]:9464', 'localhost:65535'])
    assert.equal(read(`metrics: '${ok}'\n`).metrics, ok);
});

test("hook timeouts and backoffs, and attach's idleMs, past what a timer can wait are refused", () => {
  // 2^31 ms: Node ran the timer after 1 ms, so an exec hook was killed at once as timed out (and a
  // policy's onFailure: kill then killed the VM), and attach connections were closed at once.
  const hooks = (http: string, exec: string) =>
    `actions:\n  hooks:\n    h: { type: http, url: "http://127.0.0.1:1/", ${http} }\n` +
    `    e: { type: exec, argv: [/bin/true], ${exec} }\n`;
  const big = 2 ** 31;
  assert.throws(() => read(hooks(`timeoutMs: ${big}`, '')), /hooks\.h\.timeoutMs: at most 2147483647 ms/);
  assert.throws(() => read(hooks(`backoffMs: ${big}`, '')), /hooks\.h\.backoffMs: at most/);
  assert.throws(() => read(hooks(`maxBackoffMs: ${big}`, '')), /hooks\.h\.maxBackoffMs: at most/);
  assert.throws(() => read(hooks('', `timeoutMs: ${big}`)), /hooks\.e\.timeoutMs: at most/);
  assert.throws(() => read(`attach: { idleMs: ${big} }\n`), /attach\.idleMs: Too big/);
  const ok = read(
    `${hooks(`timeoutMs: ${big - 1}`, `timeoutMs: ${big - 1}`)}attach: { idleMs: ${big - 1} }\n`,
  );
  const [h, e] = [ok.actions.hooks.h, ok.actions.hooks.e];
  assert.deepEqual([h?.timeoutMs, e?.timeoutMs, ok.attach.idleMs], [big - 1, big - 1, big - 1]);
});

test('attach.maxVcpus bounds attached vCPUs well under vm.max_map_count by default, and is positive', () => {
  // Each attached vCPU takes one of the daemon's mappings, of 65530 by the kernel's default.
  const d = read('{}\n');
  assert.equal(d.attach.maxVcpus, 16_384);
  assert.equal(attachServerOptions(d.attach, () => '/run/x/plugin.sock').maxVcpus, 16_384);
  assert.equal(read('attach: { maxVcpus: 64 }\n').attach.maxVcpus, 64);
  assert.throws(() => read('attach: { maxVcpus: 0 }\n'), /attach\.maxVcpus/);
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

test('a configuration, or an exec hook program it names, that another user could write is refused', () => {
  const sub = mkdtempSync(join(dir, 'trust-'));
  const config = join(sub, 'seawall.yaml');
  writeFileSync(config, 'heartbeatMs: 5000\n');
  chmodSync(config, 0o666);
  assert.throws(
    () => readConfigFile(config),
    /refusing to use .*seawall\.yaml: the configuration is writable by everyone \(mode 666\); chmod go-w/,
  );
  chmodSync(config, 0o620);
  assert.throws(() => readConfigFile(config), /the configuration is writable by its group/);
  chmodSync(config, 0o644);
  assert.equal(readConfigFile(config).heartbeatMs, 5000);
  // Root's daemon runs the hook's program: held to the same standard.
  const hook = join(sub, 'hook.sh');
  writeFileSync(hook, '#!/bin/sh\nexit 0\n');
  chmodSync(hook, 0o777);
  writeFileSync(config, `actions:\n  hooks:\n    move: { type: exec, argv: [${hook}], timeoutMs: 1000 }\n`);
  assert.throws(() => readConfigFile(config), /the program of exec hook 'move' is writable by everyone/);
  chmodSync(hook, 0o755);
  assert.doesNotThrow(() => readConfigFile(config));
  // A directory above it that anyone may write, not sticky: the file could be replaced.
  chmodSync(sub, 0o777);
  assert.throws(() => readConfigFile(config), /it is writable by everyone and not sticky/);
  chmodSync(sub, 0o700);
});

test('an exec hook program found where no one checked (a relative path, its own PATH) is refused', () => {
  const hook = (argv: string, env = '{}') =>
    `actions:\n  hooks:\n    m: { type: exec, argv: [${argv}], env: ${env} }\n`;
  // Both ran a 0777 script: `./evil.sh` from the daemon's working directory, `evil.sh` from a PATH
  // the hook set to a world-writable directory; only an absolute argv[0] was checked.
  for (const relative of ['./evil.sh', 'bin/evil.sh', '../evil.sh'])
    assert.throws(
      () => read(hook(relative)),
      (err: Error) => err.message.includes(`actions.hooks.m.argv.0: '${relative}' is a relative path`),
      relative,
    );
  assert.throws(
    () => read(hook('evil.sh', '{ PATH: /tmp/ww }')),
    /actions\.hooks\.m\.env\.PATH: an exec hook's PATH is the daemon's and cannot be set/,
  );
  assert.throws(() => read(hook('/bin/true', '{ PATH: /tmp/ww }')), /env\.PATH: an exec hook's PATH/);
  // A bare name on the daemon's PATH, an absolute path, and other variables are still fine.
  assert.doesNotThrow(() => read(hook('sh', '{ CLUSTER: prod }')));
  assert.doesNotThrow(() => read(hook('/bin/true')));
});

test("a configuration another user owns is refused, naming the chown for the daemon's own user", (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to give the file to other users');
  const sub = mkdtempSync(join(dir, 'owner-'));
  chmodSync(dir, 0o755);
  chmodSync(sub, 0o755);
  const config = join(sub, 'seawall.yaml');
  writeFileSync(config, 'heartbeatMs: 5000\n');
  chmodSync(config, 0o644);
  chownSync(config, 4242, 4242);
  assert.throws(
    () => readConfigFile(config),
    /the configuration is owned by uid 4242, who could change it; chown root .*seawall\.yaml/,
  );
  // Run as nobody, the daemon suggests giving the file to nobody, not to root: either would do
  // for root's daemon, only the first for this one.
  const script = `import { readConfigFile } from ${JSON.stringify(new URL('../../daemon/config.ts', import.meta.url).href)};
    try { readConfigFile(${JSON.stringify(config)}); console.log('read'); } catch (err) { console.log(err.message); }`;
  const asNobody = () =>
    execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      uid: 65534,
      gid: 65534,
      encoding: 'utf8',
      timeout: 60_000,
    });
  assert.match(asNobody(), /owned by uid 4242, who could change it; chown 65534 .*seawall\.yaml/);
  chownSync(config, 65534, 65534);
  assert.equal(asNobody().trim(), 'read');
});

test('a key given twice, an alias as a key, or an alias bomb is refused, never the later value silently', () => {
  // As the policy loader: yaml's own check saw neither an alias key nor `1` beside `"1"`.
  assert.throws(
    () => read('note: &k heartbeatMs\nheartbeatMs: 5000\n*k : 9000\n'),
    /config .*:\n {2}line 3: Map keys must not be aliases/,
  );
  assert.throws(
    () => read('actions:\n  hooks:\n    m: { type: exec, argv: [/bin/true], env: { 1: a, "1": b } }\n'),
    /line 3: Map keys must be unique/,
  );
  assert.throws(() => read('heartbeatMs: 5000\nheartbeatMs: 6000\n'), /line 2: Map keys must be unique/);
  const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 0; i < 120; i++) bomb.push(`b${i}: [*a, *a]`);
  assert.throws(() => read(`${bomb.join('\n')}\n`), /more than 100 aliases/);
  assert.equal(read('heartbeatMs: 5000\n').heartbeatMs, 5000);
});

test('a socket mode written unquoted is refused with the quoting it needs; quoted, it is read as octal', () => {
  // YAML 1.2 reads an unquoted 0660 as the decimal number 660: the error says so, for both sockets.
  assert.throws(
    () => read('socketMode: 0660\nattach:\n  socketMode: 0640\n'),
    (err: Error) =>
      /socketMode: expected a quoted octal mode such as '0660', got the number 660/.test(err.message) &&
      /attach\.socketMode: expected a quoted octal mode such as '0660', got the number 640/.test(err.message),
  );
  assert.throws(() => read("socketMode: '0999'\n"), /socketMode: expected an octal mode such as '0660'/);
  const config = read("socketMode: '0600'\nattach:\n  socketMode: '640'\n");
  assert.equal(resolveConfig(config, {}).socketMode, 0o600);
  assert.equal(attachServerOptions(config.attach, () => join(dir, 'seawall.sock')).mode, 0o640);
});
