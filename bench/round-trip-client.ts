/**
 * The one client of the verdict-latency benchmark, run in its own process so it never shares an
 * event loop with a server. Every target gets the same bytes: a 64-byte SEA event frame per
 * request. Echo servers answer with those 64 bytes; the daemon with a 96-byte VERDICT (after a
 * HELLO on each connection). `latency` runs one request in flight; `throughput` runs `vcpus`
 * loops, each with one request in flight, over `conns` connections.
 * Usage: round-trip-client echo|daemon SOCKET latency|throughput N [conns] [vcpusPerConn]
 */
import { connect, type Socket } from 'node:net';
import { CAP, encodeMessage, HEADER_SIZE } from '../protocol/index.js';
import { LatencyRecorder, seaFrame } from '../vmm/index.js';

const [target, path, mode, countText, connsText, perConnText] = process.argv.slice(2);
if (!target || !path || !mode || !countText) throw new Error('usage: see the header comment');
const count = Number(countText);
const daemon = target === 'daemon';
const REPLY = daemon ? HEADER_SIZE + 88 : HEADER_SIZE + 56;

function frame(seq: number, vcpu: number): Buffer {
  return seaFrame(seq, { vcpu, gpa: BigInt(seq % 4096) << 12n });
}

/** A connection that matches replies to requests in order (one reply per request). */
class Conn {
  readonly socket: Socket;
  #buffered = 0;
  #waiters: (() => void)[] = [];
  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.#buffered += c.length;
      while (this.#buffered >= REPLY && this.#waiters.length > 0) {
        this.#buffered -= REPLY;
        this.#waiters.shift()?.();
      }
    });
  }
  static async open(vmId: string, vcpus: number): Promise<Conn> {
    const socket = connect(path as string);
    await new Promise<void>((r, j) => {
      socket.once('connect', () => r());
      socket.once('error', j);
    });
    socket.setNoDelay?.(true);
    const c = new Conn(socket);
    if (daemon) {
      const welcome = new Promise<void>((r) => socket.once('data', () => r()));
      socket.write(
        encodeMessage({
          type: 'hello',
          version: 1,
          caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS,
          vmmPid: process.pid,
          vcpuCount: vcpus,
          extAbtEsrCap: 0,
          vmId,
          labels: { tier: 'bench' },
        }),
      );
      await welcome;
      c.#buffered = 0; // WELCOME is not a reply
    }
    return c;
  }
  request(bytes: Buffer): Promise<void> {
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      this.socket.write(bytes);
    });
  }
}

async function latency(): Promise<void> {
  const c = await Conn.open(`bench-lat-${process.pid}`, 1);
  const rec = new LatencyRecorder(count);
  const warmup = Math.min(2000, count);
  for (let i = 0; i < warmup; i++) await c.request(frame(i + 1, 0));
  for (let i = 0; i < count; i++) {
    const f = frame(i + 1, 0);
    const t0 = process.hrtime.bigint();
    await c.request(f);
    rec.add(process.hrtime.bigint() - t0);
  }
  c.socket.destroy();
  process.stdout.write(`${JSON.stringify({ target, mode, count, ...rec.percentiles([50, 99, 99.9]) })}\n`);
}

async function throughput(): Promise<void> {
  const conns = Number(connsText ?? 32);
  const perConn = Number(perConnText ?? 8);
  const cs = await Promise.all(
    Array.from({ length: conns }, (_, i) => Conn.open(`bench-tp-${process.pid}-${i}`, perConn)),
  );
  let budget = count;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    cs.flatMap((c) =>
      Array.from({ length: perConn }, async (_, vcpu) => {
        let seq = 1;
        while (budget-- > 0) await c.request(frame(seq++, vcpu));
      }),
    ),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  for (const c of cs) c.socket.destroy();
  process.stdout.write(
    `${JSON.stringify({ target, mode, count, vcpus: conns * perConn, perSecond: Math.round(count / seconds) })}\n`,
  );
}

await (mode === 'latency' ? latency() : throughput());
