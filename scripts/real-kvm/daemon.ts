/**
 * A `seawall daemon` on the host, started from the package's own `bin` entry (package.json), on
 * private sockets and state: what a VMM reaches in production, here through QEMU's virtio-serial.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
// The lane runs only under the test runner: its processes are owned as every test's are, each in a
// process group killed when the test file ends, even on a timeout (test/helpers/processes.ts).
import { spawnOwned } from '../../test/helpers/processes.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The CLI the package installs as `seawall`. */
export function seawallCli(): string {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: { seawall: string } };
  return join(ROOT, pkg.bin.seawall);
}

export interface LaneDaemon {
  name: string;
  proc: ChildProcess;
  socket: string;
  controlSocket: string;
  metricsUrl: string;
  output: string[];
  /** `seawall ARGS --control-socket … --json`, parsed. */
  query(args: string[]): Promise<unknown>;
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

export async function startLaneDaemon(dir: string, name: string, args: string[] = []): Promise<LaneDaemon> {
  const socket = join(dir, `${name}.sock`);
  const controlSocket = join(dir, `${name}.control.sock`);
  const cli = seawallCli();
  // QEMU's virtio-serial chardev connects when QEMU starts, but the guest's VMM says HELLO only
  // once the emulated kernel has booted (tens of seconds on a loaded machine): the pre-HELLO
  // timeout must outlast the boot, as it must for any VMM that connects its port at start.
  const config = join(dir, `${name}.config.yaml`);
  writeFileSync(config, 'limits:\n  helloTimeoutMs: 600000\n');
  const proc = spawnOwned(
    process.execPath,
    [
      cli,
      'daemon',
      '--socket',
      socket,
      '--control-socket',
      controlSocket,
      '--state-dir',
      join(dir, `${name}.state`),
      '--log',
      'stderr',
      '--metrics',
      '127.0.0.1:0',
      '--config',
      config,
      ...args,
    ],
    { env: { ...process.env, NOTIFY_SOCKET: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const output: string[] = [];
  let metricsUrl = '';
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`daemon ${name} not ready in 60 s:\n${output.join('\n')}`)),
      60_000,
    );
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      output.push(line);
      const m = /^metrics:\s+(http:\S+)/.exec(line);
      if (m) metricsUrl = m[1] as string;
      if (line.startsWith('seawall daemon ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    createInterface({ input: proc.stderr! }).on('line', (l) => output.push(l));
    exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`daemon ${name} exited before ready:\n${output.join('\n')}`));
    });
  });
  return {
    name,
    proc,
    socket,
    controlSocket,
    metricsUrl,
    output,
    async query(q) {
      const { stdout } = await run(
        process.execPath,
        [cli, ...q, '--control-socket', controlSocket, '--json'],
        {
          timeout: 30_000,
        },
      );
      return JSON.parse(stdout) as unknown;
    },
    async metrics() {
      return (await fetch(metricsUrl)).text();
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGCONT');
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}
