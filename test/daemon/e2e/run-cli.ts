/**
 * Runs the compiled `seawall` CLI (dist/cli/cli.js) as a child process, the way an operator
 * does, and collects its exit status and output. Asynchronous, so plugin clients living in the
 * test process keep being served while a command runs.
 */
import { spawn } from 'node:child_process';
import { CLI } from '../../helpers/daemon.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `seawall <args…>`, with optional bytes on stdin. */
export function runCli(args: readonly string[], stdin?: string): Promise<CliResult> {
  return runTool(process.execPath, [CLI, ...args], stdin);
}

/** Any program; used for `promtool check metrics` fed on stdin. */
export function runTool(file: string, args: readonly string[], stdin?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    proc.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    proc.once('error', reject);
    proc.once('close', (code) => resolve({ code, stdout, stderr }));
    proc.stdin.end(stdin ?? '');
  });
}

/** `seawall <cmd> … --control-socket <socket> --json`, parsed; fails with the output when it exits non-zero. */
export async function cliJson<T>(socket: string, args: readonly string[]): Promise<T> {
  const r = await runCli([...args, '--control-socket', socket, '--json']);
  if (r.code !== 0) throw new Error(`seawall ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout) as T;
}
