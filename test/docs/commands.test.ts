/**
 * docs/ made true. The stated subset: every `seawall …` and `node dist/bin/seawall.js …` command in a
 * ```sh or ```console code block of README.md and docs/*.md — except `seawall daemon`, which runs
 * until stopped (this test starts one) — is run for real with the compiled CLI, from a shell, and
 * must exit as documented: 0, unless the line ends in `# exit N`. A pipe's right side is not run
 * (`| jq …`). Commands about one VM must find it (the VM ids the docs use are the ones a fleet
 * here creates), and a console block's table header must be the command's real header. Inline
 * mentions of `seawall <command>` anywhere in those files must name a command that exists.
 */
import assert from 'node:assert/strict';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildProgram } from '../../cli/program.js';
import { type CliResult, runTool } from '../daemon/e2e/run-cli.js';
import { CLI, removeDir, startDaemon } from '../helpers/daemon.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const FILES = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

interface DocCommand {
  file: string;
  line: number;
  command: string;
  exit: number;
  /** The first line of output a console block shows for it, if any. */
  shown: string | null;
}

function commandsOf(file: string): DocCommand[] {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
  const out: DocCommand[] = [];
  let block: 'sh' | 'console' | 'other' | null = null;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] as string;
    const fence = /^\s*```(\w*)/.exec(raw);
    if (fence) {
      block = block ? null : fence[1] === 'sh' ? 'sh' : fence[1] === 'console' ? 'console' : 'other';
      continue;
    }
    if (block !== 'sh' && block !== 'console') continue;
    let text = raw.trim();
    if (block === 'console') {
      if (!text.startsWith('$ ')) continue;
      text = text.slice(2);
    }
    const start = i;
    while (text.endsWith('\\') && i + 1 < lines.length)
      text = `${text.slice(0, -1).trim()} ${(lines[++i] as string).trim()}`;
    if (!/^(seawall|node dist\/bin\/seawall\.js) /.test(text) && text !== 'seawall') continue;
    if (/^(seawall|node dist\/bin\/seawall\.js) daemon( |$)/.test(text)) continue;
    const exit = /#\s*exit (\d+)\s*$/.exec(text);
    const command = text
      .replace(/\s+#.*$/, '')
      .split(' | ')[0]
      ?.trim() as string;
    const next = block === 'console' ? (lines[i + 1] ?? '').trim() : '';
    out.push({
      file,
      line: start + 1,
      command,
      exit: exit ? Number(exit[1]) : 0,
      shown: next && !next.startsWith('$ ') && !next.startsWith('```') ? next : null,
    });
  }
  return out;
}

/** One documented command line, run by sh in `cwd` with `env`. */
function sh(cmd: string, cwd: string, env: NodeJS.ProcessEnv): Promise<CliResult> {
  return runTool('sh', ['-c', cmd], { cwd, env });
}

test('every seawall command in README.md and docs/ code blocks exits as documented', async (t) => {
  const commands = FILES.flatMap(commandsOf);
  assert.ok(commands.length >= 15, `found ${commands.length} commands`);
  const work = mkdtempSync(join(tmpdir(), 'seawall-docs-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  // tiered.yaml migrates through `evacuate`, which the daemon must have: an orchestrator that
  // refuses every connection, so that each migration fails as fast as it can.
  const config = join(work, 'seawall.yaml');
  writeFileSync(
    config,
    'actions:\n  hooks:\n    evacuate: { type: http, url: "http://127.0.0.1:9/", retries: 0 }\n',
  );
  const d = await startDaemon({
    args: ['--config', config, '--policy', join(ROOT, 'policies/examples/tiered.yaml')],
  });
  t.after(async () => {
    await d.kill();
    removeDir(d.dir);
  });
  // A directory like the checkout (relative paths in the docs), and `seawall` on the PATH.
  for (const dir of ['policies', 'dist', 'docs', 'metrics']) symlinkSync(join(ROOT, dir), join(work, dir));
  mkdirSync(join(work, 'bin'));
  writeFileSync(
    join(work, 'bin', 'seawall'),
    `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`,
    {
      mode: 0o755,
    },
  );
  const env = {
    PATH: `${join(work, 'bin')}:${process.env.PATH}`,
    SEAWALL_CONTROL_SOCKET: d.controlSocket,
    SEAWALL_SOCKET: d.socket,
    XDG_RUNTIME_DIR: join(work, 'runtime'),
  };
  // The VMs the docs talk about, with errors on a few pages. Driven by `seawall simulate`, whose
  // VMMs are child processes: a kill the policy decides must never reach this test's process.
  // A gold VM is migrated (tiered.yaml), the migration fails and its onFailure kills the VM.
  for (const [prefix, vms, more] of [
    ['vm', 13, ''],
    ['db', 8, ''],
    ['demo', 2, ''],
    ['gold', 1, ' --label tier=gold'],
  ] as const) {
    const s = await sh(
      `seawall simulate --vm-prefix ${prefix} --vms ${vms} --vcpus 1 --events ${vms * 2} --pages 2${more}`,
      work,
      env,
    );
    assert.equal(s.code, 0, s.stderr);
  }
  const failures: string[] = [];
  for (const c of commands) {
    const r = await sh(c.command, work, env);
    const where = `${c.file}:${c.line}: ${c.command}`;
    if (r.code !== c.exit) {
      failures.push(
        `${where}\n  exit ${r.code}, documented ${c.exit}\n  ${r.stderr.trim().split('\n').join('\n  ')}`,
      );
      continue;
    }
    if (
      / (--vm [\w-]+|why [\w-]+)/.test(c.command) &&
      /^(no events|no poisoned pages|VM .*: no stored events)/m.test(r.stdout)
    )
      failures.push(`${where}\n  finds nothing: ${r.stdout.trim()}`);
    if (c.shown && /^[A-Z][A-Z ]+[A-Z]$/.test(c.shown)) {
      const header = (s: string) =>
        s
          .trim()
          .split(/\s{2,}/)
          .join(' | ');
      const actual = r.stdout.split('\n')[0] ?? '';
      if (header(actual) !== header(c.shown))
        failures.push(`${where}\n  header shown: ${header(c.shown)}\n  header real:  ${header(actual)}`);
    }
  }
  assert.deepEqual(failures, [], `\n${failures.join('\n')}`);
});

test('every `seawall <command>` named in README.md and docs/ exists', () => {
  const program = buildProgram({
    io: { out: () => {}, err: () => {} },
    env: {},
    now: Date.now,
    exit: () => {},
  });
  const bad: string[] = [];
  for (const file of FILES) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    for (const m of text.matchAll(/`seawall ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?/g)) {
      const cmd = program.commands.find((c) => c.name() === m[1]);
      if (!cmd) {
        bad.push(`${file}: seawall ${m[1]}`);
        continue;
      }
      if (cmd.commands.length > 0 && m[2] !== undefined && !cmd.commands.some((c) => c.name() === m[2]))
        bad.push(`${file}: seawall ${m[1]} ${m[2]}`);
    }
  }
  assert.deepEqual(bad, []);
});
