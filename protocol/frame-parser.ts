/**
 * The frame parser: an explicit state machine fed with socket chunks. It waits for a whole header,
 * checks the type (known, and allowed in this direction) and the length (within the limit, exact
 * for fixed-size bodies) *before* buffering the body, then hands out bodies sliced without copying
 * when a frame sits inside one chunk. Any violation throws a ProtocolError and the parser is dead.
 */
import { HEADER_SIZE, LIMITS, MESSAGE_NAMES } from './constants.js';
import { BODY_RULES, decodeBody } from './decode.js';
import { ProtocolError } from './errors.js';
import type { Message } from './messages.js';

export interface FrameParserOptions {
  /** Types this side accepts; anything else is UNEXPECTED_TYPE (known) or UNKNOWN_TYPE. */
  accept: ReadonlySet<number>;
  maxBody?: number;
}

export class FrameParser {
  readonly #accept: ReadonlySet<number>;
  readonly #maxBody: number;
  readonly #onMessage: (m: Message) => void;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** Body length and type of the frame whose header has been read; -1 while waiting for a header. */
  #need = -1;
  #type = 0;
  #dead = false;

  constructor(onMessage: (m: Message) => void, opts: FrameParserOptions) {
    this.#onMessage = onMessage;
    this.#accept = opts.accept;
    this.#maxBody = opts.maxBody ?? LIMITS.maxBody;
  }

  /** Bytes held for an incomplete frame (bounded by HEADER_SIZE + maxBody). */
  get buffered(): number {
    return this.#buffered;
  }

  /** True when no partial frame is pending. */
  get idle(): boolean {
    return this.#buffered === 0;
  }

  push(chunk: Buffer): void {
    if (this.#dead) throw new ProtocolError('BAD_FRAME', 'parser already failed');
    try {
      this.#push(chunk);
    } catch (err) {
      this.#dead = true;
      this.#chunks = [];
      this.#buffered = 0;
      throw err;
    }
  }

  #push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    for (;;) {
      if (this.#need < 0) {
        if (this.#buffered < HEADER_SIZE) return;
        const h = this.#take(HEADER_SIZE);
        this.#checkHeader(h.readUInt32LE(0), h.readUInt16LE(4), h.readUInt16LE(6));
      }
      if (this.#buffered < this.#need) return;
      const body = this.#take(this.#need);
      const type = this.#type;
      this.#need = -1;
      this.#onMessage(decodeBody(type, body));
    }
  }

  #checkHeader(length: number, type: number, reserved: number): void {
    const name = MESSAGE_NAMES.get(type);
    if (name === undefined)
      throw new ProtocolError('UNKNOWN_TYPE', `unknown message type 0x${type.toString(16)}`);
    if (reserved !== 0)
      throw new ProtocolError('BAD_FRAME', `header reserved field is 0x${reserved.toString(16)}, not 0`);
    if (length > this.#maxBody) {
      throw new ProtocolError(
        'OVERSIZE',
        `${name} body of ${length} bytes exceeds the ${this.#maxBody}-byte limit`,
      );
    }
    if (!this.#accept.has(type))
      throw new ProtocolError('UNEXPECTED_TYPE', `${name} is not sent in this direction`);
    const rule = BODY_RULES.get(type);
    if (rule?.exact !== undefined && length !== rule.exact) {
      throw new ProtocolError('BAD_FRAME', `${name} body must be ${rule.exact} bytes, got ${length}`);
    }
    if (rule?.min !== undefined && length < rule.min) {
      throw new ProtocolError('BAD_FRAME', `${name} body must be at least ${rule.min} bytes, got ${length}`);
    }
    this.#need = length;
    this.#type = type;
  }

  /** Removes `n` buffered bytes; a slice (no copy) when they lie in the first chunk. */
  #take(n: number): Buffer {
    this.#buffered -= n;
    const first = this.#chunks[0] as Buffer;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    while (o < n) {
      const c = this.#chunks[0] as Buffer;
      const k = Math.min(c.length, n - o);
      c.copy(out, o, 0, k);
      o += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    return out;
  }
}
