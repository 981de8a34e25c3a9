/**
 * A raw plugin-side connection for tests: writes arbitrary bytes, parses what the daemon answers.
 * Bytes from the daemon that the plugin's parser rejects are a failure of the daemon, never
 * ignored: every pending and later wait rejects with the parse error.
 */
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import {
  CAP,
  encodeMessage,
  FrameParser,
  type HelloMsg,
  type Message,
  PLUGIN_ACCEPTS,
  PROTOCOL_VERSION,
  type SeaEventMsg,
} from '../../protocol/index.js';
import { type WaitOptions, within } from './wait.js';

/** A synchronous external abort on vCPU 0 at GPA 0x10000, timed now: the SEA event tests send. */
export function seaEvent(seq: number): SeaEventMsg {
  return {
    type: 'sea',
    seq,
    vcpu: 0,
    timeNs: BigInt(Date.now()) * 1_000_000n,
    replay: false,
    fallbackAction: 0,
    kvmFlags: 1n,
    esr: (0x24n << 26n) | (1n << 25n) | 0x10n,
    gva: 0n,
    gpa: 0x10000n,
  };
}

export class RawClient extends EventEmitter {
  readonly socket: Socket;
  readonly received: Message[] = [];
  readonly closed: Promise<void>;
  /** What the parser rejected in the daemon's bytes; null while they all parsed. */
  parseError: Error | null = null;

  private constructor(socket: Socket) {
    super();
    this.socket = socket;
    const parser = new FrameParser(
      (m) => {
        this.received.push(m);
        this.emit('message', m);
      },
      { accept: PLUGIN_ACCEPTS },
    );
    socket.on('data', (c: Buffer) => {
      if (this.parseError) return;
      try {
        parser.push(c);
      } catch (err) {
        this.parseError = new Error(
          `the daemon sent bytes the plugin parser rejects: ${(err as Error).message}; ` +
            `parsed so far: ${this.types()}`,
          { cause: err },
        );
        this.emit('parse-error', this.parseError);
        socket.destroy();
      }
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  /** Over a connection already made, such as one handed over as an inherited fd. */
  static over(socket: Socket): RawClient {
    return new RawClient(socket);
  }

  static open(path: string): Promise<RawClient> {
    return within(
      `a connection to ${path}`,
      new Promise((resolve, reject) => {
        const s = connect(path);
        s.once('connect', () => resolve(new RawClient(s)));
        s.once('error', reject);
      }),
    );
  }

  send(bytes: Buffer | Message): void {
    this.socket.write(Buffer.isBuffer(bytes) ? bytes : encodeMessage(bytes));
  }

  /**
   * Resolves with the first received message (past or future) that matches; rejects when the
   * connection closes without one, when the daemon's bytes do not parse, or at the deadline.
   */
  waitFor<T extends Message['type']>(
    type: T,
    pred: (m: Extract<Message, { type: T }>) => boolean = () => true,
    opts: WaitOptions = {},
  ): Promise<Extract<Message, { type: T }>> {
    type M = Extract<Message, { type: T }>;
    const match = (m: Message): m is M => m.type === type && pred(m as M);
    let cleanup = () => {};
    const found = new Promise<M>((resolve, reject) => {
      const fail = (err: Error) => reject(err);
      const past = this.received.find(match);
      if (past) return resolve(past);
      if (this.parseError) return reject(this.parseError);
      const on = (m: Message) => {
        if (match(m)) resolve(m);
      };
      this.on('message', on);
      this.on('parse-error', fail);
      cleanup = () => {
        this.off('message', on);
        this.off('parse-error', fail);
      };
      this.closed.then(() => {
        const late = this.received.find(match);
        if (late) resolve(late);
        else reject(this.parseError ?? new Error(`connection closed without ${type}; got ${this.types()}`));
      });
    });
    return within(`${type} from the daemon`, found, {
      state: () => `received so far: ${this.types()}`,
      ...opts,
    }).finally(() => cleanup());
  }

  async hello(vmId: string, extra: Partial<HelloMsg> = {}): Promise<void> {
    this.send({
      type: 'hello',
      version: PROTOCOL_VERSION,
      caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS,
      vmmPid: process.pid,
      vcpuCount: 4,
      extAbtEsrCap: 0,
      vmId,
      labels: {},
      ...extra,
    });
    await this.waitFor('welcome');
  }

  destroy(): void {
    this.socket.destroy();
  }

  private types(): string {
    return this.received.map((m) => m.type).join(',') || 'nothing';
  }
}
