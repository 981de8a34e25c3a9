/**
 * The test's end of the VMM's "lane-ctl" virtio-serial port: QEMU connects this socket to the
 * port, the VMM writes one JSON object per line, and the test answers "go" when a phase waits for
 * something done on the host. Every wait has a deadline and fails with what was received so far.
 */
import { createServer, type Server, type Socket } from 'node:net';

export type Report = { t: string } & Record<string, unknown>;

export class LaneControl {
  readonly reports: Report[] = [];
  readonly #server: Server;
  #socket: Socket | null = null;
  #waiters: (() => void)[] = [];
  #closed = false;

  private constructor(server: Server) {
    this.#server = server;
    server.on('connection', (s) => {
      this.#socket = s;
      let buf = '';
      s.setEncoding('utf8');
      s.on('data', (chunk: string) => {
        buf += chunk;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i).trim();
          buf = buf.slice(i + 1);
          if (line.startsWith('{')) this.#push(line);
        }
      });
      s.on('error', () => {});
      s.on('close', () => {
        this.#closed = true;
        this.#wake();
      });
    });
  }

  static async listen(path: string): Promise<LaneControl> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, resolve);
    });
    return new LaneControl(server);
  }

  #push(line: string): void {
    try {
      this.reports.push(JSON.parse(line) as Report);
    } catch {
      this.reports.push({ t: 'unparsed', line });
    }
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Resolves with the first report that satisfies `pred`; rejects at the deadline or on close. */
  async waitFor(pred: (r: Report) => boolean, timeoutMs: number, what: string): Promise<Report> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.reports.find(pred);
      if (hit) return hit;
      const failed = this.reports.find((r) => r.t === 'error');
      if (failed) throw new Error(`VMM error while waiting for ${what}: ${JSON.stringify(failed)}`);
      if (this.#closed) throw new Error(`control port closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`no ${what} within ${timeoutMs} ms; reports: ${JSON.stringify(this.reports)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Answers a `wait` report of the VMM. */
  go(): void {
    this.#socket?.write('go\n');
  }

  close(): Promise<void> {
    this.#socket?.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}
