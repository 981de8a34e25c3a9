/**
 * The command line itself, run as an operator runs it (the compiled CLI in a child process):
 * --help on every command and --version exit 0; usage errors exit 2 and failures 1, everywhere;
 * values are validated before any work (a bare port, an unknown log target); one duration grammar
 * with policies; the man page and bash completion come from the same definitions.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../../cli/cli.js';
import { manPage } from '../../cli/man-page.js';
import { buildProgram, walkCommands } from '../../cli/program.js';
import { VERSION } from '../../daemon/index.js';
import { parseDuration } from '../../policies/index.js';

const CLI = new URL('../../dist/bin/seawall.js', import.meta.url).pathname;
const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, XDG_RUNTIME_DIR: '/nonexistent/runtime', ...env },
  });
const quiet = { out: () => {}, err: () => {} };
/** `seawall …` in this process (the spawned form is checked once below; spawning each is slow). */
async function inProcess(
  args: string[],
  env: NodeJS.ProcessEnv = { XDG_RUNTIME_DIR: '/nonexistent/runtime' },
) {
  let stdout = '';
  let stderr = '';
  const io = { out: (t: string) => (stdout += t), err: (t: string) => (stderr += t) };
  const status = await main(args, io, { env });
  return { status, stdout, stderr };
}
const program = () => buildProgram({ io: quiet, env: {}, now: Date.now, exit: () => {} });

test('--help works on every command and subcommand, exits 0, and shows that command’s usage', async () => {
  const all = walkCommands(program());
  assert.ok(all.length >= 16);
  for (const { path } of all) {
    let stdout = '';
    const io = { out: (t: string) => (stdout += t), err: (t: string) => (stdout += t) };
    const status = await main([...path, '--help'], io, { env: {} });
    const r = { status, stdout };
    assert.equal(r.status, 0, `${path.join(' ')} --help: ${stdout}`);
    assert.match(r.stdout, new RegExp(`^Usage: seawall${path.length ? ` ${path.join(' ')}` : ''}( |$)`, 'm'));
    assert.match(r.stdout, /Exit status:\n {2}0 {2}done/);
  }
  // The old parser read these as a file named --help and an unknown option.
  assert.equal(run(['policy', 'check', '--help']).status, 0);
  assert.equal(run(['daemon', '--help']).status, 0);
});

test('--version prints the package version', () => {
  const r = run(['--version']);
  assert.equal(r.status, 0);
  assert.equal(r.stdout.trim(), VERSION);
});

test('exit status: 2 for every kind of usage error, 1 for a failure, never anything else', async () => {
  const usage: string[][] = [
    [],
    ['bogus'],
    ['policy'],
    ['policy', 'check'],
    ['status', '--verbose'],
    ['daemon', '--metrics', '9464'],
    ['daemon', '--metrics', '127.0.0.1:99999'],
    ['daemon', '--metrics', '[:]:19464'],
    ['daemon', '--log', 'bogus'],
    ['daemon', '--log-events', 'sometimes'],
    ['events', '--since', '1 hour'],
    ['simulate', '--duration', '10 s'],
    ['simulate', '--vms', '0', '--events', '1'],
    ['esr', 'decode', 'banana'],
    ['kvm', 'events', '--abi', 'merged'],
    ['why'],
    ['alert-rules', '--runbook-base', 'relative/path'],
    ['alert-rules', '--runbook-base', 'https://wiki.example/ops.md?x={{x}}'],
  ];
  for (const args of usage) {
    const r = await inProcess(args);
    assert.equal(r.status, 2, `seawall ${args.join(' ')}: ${r.stderr}`);
    assert.notEqual(r.stderr, '', `seawall ${args.join(' ')} says why`);
  }
  const bare = run(['daemon', '--metrics', '9464']);
  assert.equal(bare.status, 2, 'the compiled CLI exits 2 too');
  assert.match(bare.stderr, /a bare port is ambiguous; write the address too, e.g\. 127\.0\.0\.1:9464/);
  // Not an IPv6 address in the brackets: a usage error, not a failed listen (ENOTFOUND, exit 1).
  const v6 = run(['daemon', '--metrics', '[:]:19464']);
  assert.equal(v6.status, 2, v6.stderr);
  assert.match(v6.stderr, /'\[:\]:19464'.*not HOST:PORT, e\.g\. 127\.0\.0\.1:9464 or \[::1\]:9464/);
  const failed = [['status'], ['kvm', 'events', '--abi', 'merged', '--kind', 'instruction']];
  for (const args of failed) assert.equal((await inProcess(args)).status, 1, args.join(' '));
  assert.equal(run(['status']).status, 1, 'the compiled CLI exits 1 too');
});

test('one duration grammar: what a policy accepts the CLI accepts, and the other way round', () => {
  for (const text of ['500ms', '90s', '5m30s', '1h', '7d', '1h30m']) {
    assert.notEqual(parseDuration(text), null, text);
    assert.notEqual(
      run(['events', '--since', text, '--control-socket', '/nonexistent.sock']).status,
      2,
      text,
    );
  }
  for (const text of ['1 hour', '1.5h', 'h', '10']) {
    assert.equal(parseDuration(text), null, text);
    assert.equal(run(['events', '--since', text, '--control-socket', '/nonexistent.sock']).status, 2, text);
  }
});

test('every default the help shows is a value its option takes, meaning the default itself', () => {
  let checked = 0;
  for (const { path, command } of walkCommands(program())) {
    for (const option of command.options) {
      const shown = option.defaultValueDescription ?? option.defaultValue;
      // Flags (booleans) and options without a default show nothing to type.
      if (option.defaultValue === undefined || typeof option.defaultValue === 'boolean' || !option.required)
        continue;
      const name = `${path.join(' ')} ${option.long}`;
      const text = String(shown);
      const parsed = option.parseArg ? option.parseArg(text, undefined) : text;
      if (option.argChoices) assert.ok(option.argChoices.includes(text), `${name}: ${text} is a choice`);
      assert.deepEqual(parsed, option.defaultValue, `${name}: (default: ${text}) is the default`);
      checked++;
    }
  }
  assert.ok(checked >= 5, `${checked} defaults checked`);
});

test('no flag: the daemon is found through SEAWALL_CONTROL_SOCKET, and the error names every place tried', async () => {
  const r = await inProcess(['status']);
  assert.equal(r.status, 1);
  assert.match(
    r.stderr,
    /no seawall daemon found: no control socket at \/run\/seawall\/control\.sock or \/nonexistent\/runtime\/seawall\/control\.sock/,
  );
  assert.match(r.stderr, /--control-socket PATH or SEAWALL_CONTROL_SOCKET/);
  const env = await inProcess(['status'], { SEAWALL_CONTROL_SOCKET: '/nonexistent/by-env.sock' });
  assert.match(env.stderr, /no seawall daemon is listening on \/nonexistent\/by-env\.sock/);
});

test('the man page is generated from the command definitions and docs/seawall.1 is current', () => {
  const page = manPage(program(), VERSION);
  const committed = readFileSync(new URL('../../docs/seawall.1', import.meta.url), 'utf8');
  assert.equal(committed, page, 'docs/seawall.1 is stale: run npm run build && node scripts/man.mjs');
  // Typography as roff characters, which man(1) shows in any locale: under LANG=C raw UTF-8 is dropped.
  assert.ok(!/[^\t\n -~]/.test(page), 'the page is ASCII');
  assert.match(page, /^\.SH NAME\nseawall \\- handles memory errors /m);
  for (const { path, command } of walkCommands(program())) {
    if (path.length === 0 || command.commands.length > 0) continue;
    assert.ok(page.includes(`.SS seawall ${path.join(' ').replaceAll('-', '\\-')}`), path.join(' '));
    for (const o of command.options) assert.ok(page.includes(o.flags.replaceAll('-', '\\-')), o.flags);
  }
});

test('bash completion from the same definitions completes commands, subcommands, options and choices', async (t) => {
  const generated = await inProcess(['completion', 'bash']);
  assert.equal(generated.status, 0);
  const dir = mkdtempSync(join(tmpdir(), 'seawall-completion-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'seawall.bash');
  writeFileSync(file, generated.stdout);
  /** COMPREPLY for `line` typed in `cwd`, one word a line, and the compopt calls it made. */
  const completion = (line: string, cwd?: string) => {
    const words = line.split(' ');
    const script = [
      `source ${JSON.stringify(file)}`,
      // compopt works only under readline's completion: record what it is asked for.
      'compopt() { calls+="$*;"; }',
      `COMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(' ')})`,
      `COMP_CWORD=${words.length - 1}`,
      '_seawall_complete',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash expansion, not a template
      'printf "%s\\n" "${COMPREPLY[@]}"',
      'printf "%s" "$calls" >&2',
    ].join('\n');
    const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', cwd });
    assert.equal(r.status, 0, r.stderr);
    return { words: r.stdout.trim().split('\n').sort(), compopt: r.stderr };
  };
  const complete = (line: string) => completion(line).words;
  assert.deepEqual(complete('seawall po'), ['poison', 'policy']);
  assert.deepEqual(complete('seawall policy '), ['--help', 'check', 'explain', 'help', 'test']);
  assert.ok(complete('seawall daemon --').includes('--log-events'));
  assert.deepEqual(complete('seawall daemon --log '), ['auto', 'journal', 'stderr']);
  assert.deepEqual(complete('seawall kvm events --abi m'), ['merged']);
  assert.deepEqual(complete('seawall completion '), ['--help', 'bash']);
  assert.deepEqual(complete('seawall help po'), ['poison', 'policy']);
  assert.deepEqual(complete('seawall policy help '), ['check', 'explain', 'test']);

  // File names come whole, never split at spaces or glob-expanded, with filenames quoting on.
  const files = join(dir, 'files');
  mkdirSync(join(files, 'pols'), { recursive: true });
  for (const name of ['my policy.yaml', 'other.yaml', '*']) writeFileSync(join(files, name), '');
  for (const line of ['seawall daemon --policy my', 'seawall policy check my']) {
    const r = completion(line, files);
    assert.deepEqual(r.words, ['my policy.yaml'], line);
    assert.equal(r.compopt, '-o filenames;', line);
  }
  assert.deepEqual(completion('seawall daemon --policy *', files).words, ['*']);
  assert.deepEqual(completion('seawall daemon --policy p', files).words, ['pols']);
  assert.equal(completion('seawall daemon --log ', files).compopt, '', 'no filenames quoting for words');
});
