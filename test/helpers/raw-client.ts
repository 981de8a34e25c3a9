/** A raw plugin-side connection for tests: writes arbitrary bytes, parses what the daemon answers. */
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
} from '../../protocol/index.js';

export class RawClient extends EventEmitter {
  readonly socket: Socket;
  readonly received: Message[] = [];
  readonly closed: Promise<void>;
  parseError: unknown = null;

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
      try {
        parser.push(c);
      } catch (err) {
        this.parseError = err;
      }
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static open(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect(path);
      s.once('connect', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  send(bytes: Buffer | Message): void {
    this.socket.write(Buffer.isBuffer(bytes) ? bytes : encodeMessage(bytes));
  }

  /** Resolves with the first received message (past or future) that matches. */
  waitFor<T extends Message['type']>(
    type: T,
    pred: (m: Extract<Message, { type: T }>) => boolean = () => true,
  ) {
    return new Promise<Extract<Message, { type: T }>>((resolve, reject) => {
      const match = (m: Message) => m.type === type && pred(m as Extract<Message, { type: T }>);
      const found = this.received.find(match);
      if (found) return resolve(found as Extract<Message, { type: T }>);
      const on = (m: Message) => {
        if (!match(m)) return;
        this.off('message', on);
        resolve(m as Extract<Message, { type: T }>);
      };
      this.on('message', on);
      this.closed.then(() => {
        const late = this.received.find(match);
        if (late) resolve(late as Extract<Message, { type: T }>);
        else
          reject(
            new Error(`connection closed without ${type}; got ${this.received.map((m) => m.type).join(',')}`),
          );
      });
    });
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
}
