/**
 * The client end of the control socket, for the CLI and tests: one connection, one request, one
 * answer. A daemon that is not running, a socket that may not be opened, no answer in time and a
 * malformed answer each raise a ControlError with its own code; an error the daemon answered is
 * raised with the daemon's code.
 */
import { connect } from 'node:net';
import { checkSocketPath } from '../kvm/index.js';
import { type ControlCommand, type ControlResults, MUTATING_COMMANDS } from './commands.js';
import { ControlError, controlErrorCode } from './errors.js';

/** How long a client waits for the answer to a read (status, events, …). */
export const CONTROL_TIMEOUT_MS = 10_000;
/**
 * How long a client waits for `reload`'s answer: the daemon gives a policy load up to 300 s
 * (POLICY_LOAD_TIMEOUT_MS, daemon/policy-worker.ts; test/control/client.test.ts holds this above
 * it) before it abandons the load and answers, plus time for the answer itself.
 */
export const RELOAD_TIMEOUT_MS = 330_000;

/** The default deadline of `cmd`'s exchange. */
export function controlTimeoutMs(cmd: ControlCommand): number {
  return cmd === 'reload' ? RELOAD_TIMEOUT_MS : CONTROL_TIMEOUT_MS;
}

export interface ControlClientOptions {
  /** Deadline for the whole exchange (default `controlTimeoutMs(cmd)`). */
  timeoutMs?: number;
  /** Largest answer accepted (default 64 MiB). */
  maxResponseBytes?: number;
}

function unavailable(path: string, err: NodeJS.ErrnoException): ControlError {
  const why =
    err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
      ? `no seawall daemon is listening on ${path} (is it running? see --control-socket)`
      : err.code === 'EACCES'
        ? `permission denied on ${path}: the control socket is 0600 — run as root or as the daemon's user`
        : `cannot connect to ${path}: ${err.message}`;
  return new ControlError('SEAWALL_CONTROL_UNAVAILABLE', why, { cause: err });
}

/** Sends `cmd` with `args` and resolves with the result; rejects with a ControlError. */
export function controlRequest<C extends ControlCommand>(
  path: string,
  cmd: C,
  args: Record<string, unknown> = {},
  opts: ControlClientOptions = {},
): Promise<ControlResults[C]> {
  const timeoutMs = opts.timeoutMs ?? controlTimeoutMs(cmd);
  // A command that changes the daemon may have taken effect even though no answer arrived.
  const unknown = MUTATING_COMMANDS.has(cmd)
    ? `: whether the ${cmd} took effect is unknown (the daemon may still be carrying it out or may have completed it); check \`seawall status\``
    : '';
  const maxBytes = opts.maxResponseBytes ?? 64 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    checkSocketPath(path, 'connect');
    const socket = connect(path);
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const done = (err: ControlError | null, value?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value as ControlResults[C]);
    };
    const timer = setTimeout(
      () =>
        done(
          new ControlError(
            'SEAWALL_CONTROL_TIMEOUT',
            `no answer from ${path} within ${timeoutMs} ms${unknown}`,
          ),
        ),
      timeoutMs,
    );
    socket.once('connect', () => socket.write(`${JSON.stringify({ id: 1, cmd, args })}\n`));
    socket.on('error', (err: NodeJS.ErrnoException) => done(unavailable(path, err)));
    socket.on('data', (chunk: Buffer) => {
      const nl = chunk.indexOf(0x0a);
      if (size + (nl === -1 ? chunk.length : nl) > maxBytes) {
        return done(new ControlError('SEAWALL_CONTROL_BAD_RESPONSE', `answer larger than ${maxBytes} bytes`));
      }
      chunks.push(nl === -1 ? chunk : chunk.subarray(0, nl));
      size += chunk.length;
      if (nl === -1) return;
      try {
        done(null, parse(Buffer.concat(chunks).toString('utf8'), path));
      } catch (err) {
        done(err as ControlError);
      }
    });
    // Closed before a byte of an answer: the daemon stopped (or crashed) with the request in hand,
    // as a daemon that is away; closed partway through one, the answer is broken.
    socket.on('end', () =>
      done(
        new ControlError(
          size === 0 ? 'SEAWALL_CONTROL_UNAVAILABLE' : 'SEAWALL_CONTROL_BAD_RESPONSE',
          `${path} closed without answering${unknown}`,
        ),
      ),
    );
  });
}

/** The result of a response line, or the error it carries. */
function parse(line: string, path: string): unknown {
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    throw new ControlError('SEAWALL_CONTROL_BAD_RESPONSE', `${path} answered something that is not JSON`);
  }
  if (typeof msg !== 'object' || msg === null || typeof (msg as { ok?: unknown }).ok !== 'boolean') {
    throw new ControlError('SEAWALL_CONTROL_BAD_RESPONSE', `${path} answered without an ok field`);
  }
  const m = msg as { ok: boolean; result?: unknown; error?: { code?: unknown; message?: unknown } };
  if (m.ok) return m.result;
  const code = controlErrorCode(m.error?.code);
  const message = typeof m.error?.message === 'string' ? m.error.message : 'the daemon refused the request';
  throw new ControlError(code ?? 'SEAWALL_CONTROL_BAD_RESPONSE', message);
}
