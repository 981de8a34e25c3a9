/**
 * A daemon stand-in for the conformance suite: it records every frame a plugin sends — raw bytes
 * and decoded message — and answers with whatever the scenario says, byte vectors included.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { decodeBody, HEADER_SIZE, type Message } from '../../../protocol/index.js';

export interface Frame {
  bytes: Buffer;
  msg: Message;
}

export class FakeConn {
  readonly frames: Frame[] = [];
  /** Frames this side could not decode (each fails the scenario that checks `errors`). */
  readonly errors: unknown[] = [];
  readonly socket: Socket;
  #minor = 0;
  #buf = Buffer.alloc(0);
  #waiters: (() => void)[] = [];
  readonly closed: Promise<void>;

  constructor(socket: Socket, onFrame: (c: FakeConn, f: Frame) => void) {
    this.socket = socket;
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, chunk]);
      while (this.#buf.length >= HEADER_SIZE) {
        const len = HEADER_SIZE + this.#buf.readUInt32LE(0);
        if (this.#buf.length < len) break;
        const bytes = this.#buf.subarray(0, len);
        this.#buf = this.#buf.subarray(len);
        let msg: Message;
        try {
          msg = decodeBody(bytes.readUInt16LE(4), bytes.subarray(HEADER_SIZE), this.#minor);
        } catch (err) {
          // A plugin's malformed frame is a finding, not a crash of the suite.
          this.errors.push(err);
          socket.destroy();
          return;
        }
        if (msg.type === 'hello') this.#minor = msg.minor ?? 0;
        const f = { bytes: Buffer.from(bytes), msg };
        this.frames.push(f);
        onFrame(this, f);
        for (const w of this.#waiters.splice(0)) w();
      }
    });
  }

  send(frame: Buffer): void {
    this.socket.write(frame);
  }

  /** The first frame of `type` from index `from` on, waiting up to `timeoutMs` for it. */
  async next(type: Message['type'], from = 0, timeoutMs = 10_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.slice(from).find((x) => x.msg.type === type);
      if (f) return f;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${type} in ${timeoutMs} ms; got ${this.types().join(',')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
        this.closed.then(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      if (this.socket.destroyed && !this.frames.slice(from).some((x) => x.msg.type === type))
        throw new Error(`connection closed without ${type}; got ${this.types().join(',')}`);
    }
  }

  types(): string[] {
    return this.frames.map((f) => f.msg.type);
  }
}

export interface Fake {
  path: string;
  conns: FakeConn[];
  /** The `n`th connection (0-based), waiting up to `timeoutMs` for it. */
  conn(n: number, timeoutMs?: number): Promise<FakeConn>;
  close(): Promise<void>;
}

export async function fakeDaemon(onFrame: (c: FakeConn, f: Frame) => void): Promise<Fake> {
  const path = join(mkdtempSync(join(tmpdir(), 'seawall-fake-')), 'plugin.sock');
  const conns: FakeConn[] = [];
  const waiters: (() => void)[] = [];
  const server: Server = createServer((s) => {
    conns.push(new FakeConn(s, onFrame));
    for (const w of waiters.splice(0)) w();
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path,
    conns,
    async conn(n, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!conns[n]) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no connection #${n} in ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return conns[n] as FakeConn;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of conns) c.socket.destroy();
        server.close(() => {
          // The socket is gone with the server; its directory is the test's to remove.
          rmSync(dirname(path), { recursive: true, force: true });
          resolve();
        });
      }),
  };
}
