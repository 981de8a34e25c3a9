/**
 * What the C plugin's tests share (test/protocol/c-plugin*.test.ts): compiling the plugin with a
 * fixture of test/protocol/fixtures/, and a peer on a private socket that plays the daemon.
 */
import { mkdtempSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { DAEMON_ACCEPTS, encodeMessage, FrameParser, type Message } from '../../protocol/index.js';
import { removeDir } from '../helpers/daemon.js';
import { runFile as run } from '../helpers/processes.js';
import { requireTool } from '../helpers/tools.js';

export const C_SRC = new URL('../../vmm/c/', import.meta.url).pathname;

let buildDir: string | null = null;
/** This test file's directory for binaries and sockets, removed when its tests are done. */
export function cBuildDir(): string {
  if (buildDir) return buildDir;
  const made = mkdtempSync(join(tmpdir(), 'seawall-c-'));
  buildDir = made;
  after(() => removeDir(made));
  return made;
}

/**
 * Compiles test/protocol/fixtures/<name>.c against the plugin, with `interpose` defines (e.g.
 * `send=fake_send`) applied to the plugin alone, warnings as errors; null when gcc is absent.
 */
export async function fixtureBinary(
  t: Parameters<typeof requireTool>[0],
  name: string,
  interpose: string[] = [],
): Promise<string | null> {
  const gcc = requireTool(t, 'gcc', 'gcc');
  if (!gcc) return null;
  const bin = join(cBuildDir(), name);
  const fixture = new URL(`./fixtures/${name}.c`, import.meta.url).pathname;
  const strict = ['-std=c11', '-Wall', '-Wextra', '-Werror', '-pedantic', '-O2', `-I${C_SRC}`];
  const plugin = join(cBuildDir(), `${name}-plugin.o`);
  const defines = interpose.map((d) => `-D${d}`);
  await run(gcc, [...strict, ...defines, '-c', '-o', plugin, join(C_SRC, 'seawall_plugin.c')]);
  await run(gcc, [...strict, '-o', bin, fixture, plugin]);
  return bin;
}

/** A peer on a private socket that records each connection's frames and answers as `answer` says. */
export async function fakeDaemon(answer: (conn: number, m: Message, s: Socket) => void) {
  const path = join(mkdtempSync(join(cBuildDir(), 'fake-')), 'plugin.sock');
  const conns: Message[][] = [];
  const server: Server = createServer((s) => {
    const n = conns.length;
    const got: Message[] = [];
    conns.push(got);
    const p = new FrameParser(
      (m) => {
        got.push(m);
        answer(n, m, s);
      },
      { accept: DAEMON_ACCEPTS },
    );
    s.on('data', (c: Buffer) => p.push(c));
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, conns, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** A WELCOME for 1.`minor` (a 1.0 one keeps max_body reserved). */
export function welcomeFor(minor: number): Buffer {
  const maxBody = minor >= 1 ? 16384 : 0;
  return encodeMessage({
    type: 'welcome',
    version: 1,
    minor,
    maxInFlight: 16,
    sessionId: 9n,
    heartbeatMs: 5000,
    maxBody,
  });
}

export const WELCOME = welcomeFor(1);
