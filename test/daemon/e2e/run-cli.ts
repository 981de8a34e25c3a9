/**
 * Runs the compiled `seawall` CLI (dist/cli/cli.js) as a child process, the way an operator
 * does, and collects its exit status and output. Asynchronous, so plugin clients living in the
 * test process keep being served while a command runs.
 */
import { CLI } from '../../helpers/daemon.js';
import { killOwned, spawnOwned } from '../../helpers/processes.js';
import { within } from '../../helpers/wait.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `seawall <args…>`, with optional bytes on stdin. */
export function runCli(args: readonly string[], stdin?: string): Promise<CliResult> {
  return runTool(process.execPath, [CLI, ...args], stdin);
}

/** Any program; used for `promtool check metrics` fed on stdin. Killed if it has not ended by the deadline. */
export async function runTool(file: string, args: readonly string[], stdin?: string): Promise<CliResult> {
  const proc = spawnOwned(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const done = new Promise<CliResult>((resolve, reject) => {
    proc.stdout?.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    proc.stderr?.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    proc.once('error', reject);
    proc.once('close', (code) => resolve({ code, stdout, stderr }));
    proc.stdin?.end(stdin ?? '');
  });
  try {
    return await within(`${file} ${args.join(' ')} to finish`, done, {
      state: () => `output: ${stdout}${stderr}`,
    });
  } catch (err) {
    await killOwned(proc);
    throw err;
  }
}

/** `seawall <cmd> … --control-socket <socket> --json`, parsed; fails with the output when it exits non-zero. */
export async function cliJson<T>(socket: string, args: readonly string[]): Promise<T> {
  const r = await runCli([...args, '--control-socket', socket, '--json']);
  if (r.code !== 0) throw new Error(`seawall ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout) as T;
}
