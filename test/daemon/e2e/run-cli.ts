/**
 * Runs the compiled `seawall` CLI (dist/bin/seawall.js) as a child process, the way an operator
 * does, and collects its exit status and output. Asynchronous, so plugin clients living in the
 * test process keep being served while a command runs.
 */
import { CLI } from '../../helpers/daemon.js';
import { killOwned, spawnOwned } from '../../helpers/processes.js';
import { within } from '../../helpers/wait.js';

export interface CliResult {
  code: number | null;
  /** The signal that ended it, if one did. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ToolOptions {
  /** Bytes on its stdin (none: stdin is /dev/null). */
  stdin?: string;
  /** Its whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Its deadline, for a program that runs long by design (default: the wait deadline). */
  timeoutMs?: number;
}

/** `seawall <args…>`. */
export function runCli(args: readonly string[], opts: ToolOptions = {}): Promise<CliResult> {
  return runTool(process.execPath, [CLI, ...args], opts);
}

/**
 * Any program (promtool fed on stdin, a shell line), in a process group of its own that is
 * killed if it has not ended by the deadline, or when the test file ends.
 */
export async function runTool(
  file: string,
  args: readonly string[],
  opts: ToolOptions = {},
): Promise<CliResult> {
  const proc = spawnOwned(file, args, {
    stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
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
    proc.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    if (opts.stdin !== undefined) {
      // A command may exit before it reads all it was given: its status says why, not an EPIPE.
      proc.stdin?.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EPIPE') reject(err);
      });
      proc.stdin?.end(opts.stdin);
    }
  });
  try {
    return await within(`${file} ${args.join(' ')} to finish`, done, {
      state: () => `output: ${stdout}${stderr}`,
      ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
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
