import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { MetricsError } from './errors.js';
import { type PeerUid, ScrapeConnections } from './scrape-connections.js';
import type { MetricsRendering } from './sliced-render.js';

/**
 * Default address of the /metrics endpoint. Loopback only: the counts name VMs, and a host-local
 * Prometheus (or an agent that forwards) is the expected scraper; set `host` to expose it wider.
 * Port 9464 is also the default of OpenTelemetry's Prometheus exporters (JS and Python SDKs), so a
 * host that runs one of those beside seawall needs `port` set on one side; see docs/metrics.md.
 */
export const DEFAULT_METRICS_HOST = '127.0.0.1';
export const DEFAULT_METRICS_PORT = 9464;
export const METRICS_PATH = '/metrics';

/** Where the metrics come from: {@link SeawallMetrics} satisfies it. */
export interface MetricsSource {
  readonly contentType: string;
  /** The text in parts, and the time its tasks took on the event loop (sliced-render.ts). */
  render(): Promise<MetricsRendering>;
}

export interface MetricsServerOptions {
  /** Address to bind. Default 127.0.0.1. */
  readonly host?: string;
  /** TCP port; 0 picks a free one (tests). Default 9464. */
  readonly port?: number;
  /**
   * Most simultaneous scrape connections (default 16). Past it they are shared by owner: the
   * peer's uid from {@link peerUid}, else `local` or a remote peer's address (scrape-connections.ts).
   */
  readonly maxConnections?: number;
  /**
   * The uid owning the other end of a connection made on this host, null when none does (a peer
   * on another host). Asked only past {@link maxConnections}; unset or failing, every local peer
   * is one owner.
   */
  readonly peerUid?: PeerUid;
  /** Called once, the first time {@link peerUid} fails: from then on every local peer is one owner. */
  readonly onPeerUidFailed?: (err: Error) => void;
  /**
   * The largest share of time renderings may take, whoever scrapes (default 0.02): after one that
   * took d, the next starts (d / share − d) later, at most {@link MAX_RENDER_WAIT_MS}.
   */
  readonly maxRenderShare?: number;
  /**
   * A connection with no progress either way for this long is closed (default 10 s, past the
   * longest wait for a rendering's turn): a scraper that never reads a large answer would
   * otherwise keep its slot, and sixteen of them every scrape out.
   */
  readonly stallTimeoutMs?: number;
}

/** The longest a scrape waits for its turn to render; well under Prometheus's 10 s scrape timeout. */
export const MAX_RENDER_WAIT_MS = 5_000;

/** The address actually bound (the real port when 0 was asked for). */
export interface MetricsAddress {
  readonly host: string;
  readonly port: number;
  readonly family: string;
}

// A scrape is rendered from memory in well under these; they only bound slow or idle clients.
const HEADERS_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** How often Node checks the header and request timeouts (its default, 30 s, let them run 6 times over). */
const TIMEOUT_CHECK_MS = 1_000;
const STALL_TIMEOUT_MS = 10_000;

/**
 * The Prometheus scrape endpoint: `GET /metrics` (and `HEAD`) → 200 with the exposition text,
 * any other path → 404, any other method on /metrics → 405 with `Allow: GET, HEAD`.
 *
 * A scrape never waits on anything slow: the text is rendered from in-memory values, concurrent
 * scrapes share one rendering, and a failing rendering answers 500 without touching the process.
 *
 * Renderings are paced. One runs on the daemon's event loop, a slice at a time (sliced-render.ts),
 * and verdicts share the loop with it: at 1,000 VMs' series (~7,000 lines) it took ~40 ms in one
 * task, and a local user scraping in a loop raised another VM's verdict p99 from 1.3 ms to 28 ms
 * (docs/metrics.md). So after a rendering whose slices took d in all (their sum, not the wall time
 * from first to last), the next starts no earlier than (d / maxRenderShare − d) later; a scrape
 * that comes sooner waits for it, with every scrape meanwhile, and gets values read after it
 * arrived, never older ones. Prometheus, scraping every 15 s or so, never waits.
 */
export class MetricsServer {
  readonly #source: MetricsSource;
  readonly #host: string;
  readonly #port: number;
  readonly #server: Server;
  #state: 'idle' | 'listening' | 'closed' = 'idle';
  #address: MetricsAddress | undefined;
  #rendering: Promise<MetricsRendering> | undefined;
  readonly #renderShare: number;
  /** performance.now() before which no rendering starts. */
  #nextRenderAt = 0;
  #binding: Promise<unknown> | undefined;
  readonly #open: ScrapeConnections;

  constructor(source: MetricsSource, options: MetricsServerOptions = {}) {
    this.#source = source;
    this.#host = options.host ?? DEFAULT_METRICS_HOST;
    this.#port = options.port ?? DEFAULT_METRICS_PORT;
    const maxConnections = options.maxConnections ?? 16;
    this.#renderShare = options.maxRenderShare ?? 0.02;
    if (!(this.#renderShare > 0 && this.#renderShare <= 1)) {
      throw new MetricsError(
        'SEAWALL_METRICS_INVALID_OPTION',
        `maxRenderShare must be in (0, 1]: ${this.#renderShare}`,
        { option: 'maxRenderShare', value: this.#renderShare },
      );
    }
    if (!(Number.isInteger(this.#port) && this.#port >= 0 && this.#port <= 65535)) {
      throw new MetricsError('SEAWALL_METRICS_INVALID_OPTION', `port out of range: ${this.#port}`, {
        option: 'port',
        value: this.#port,
      });
    }
    if (!(Number.isSafeInteger(maxConnections) && maxConnections > 0)) {
      throw new MetricsError(
        'SEAWALL_METRICS_INVALID_OPTION',
        `maxConnections out of range: ${maxConnections}`,
        {
          option: 'maxConnections',
          value: maxConnections,
        },
      );
    }
    this.#open = new ScrapeConnections(maxConnections, options.peerUid, options.onPeerUidFailed);
    this.#server = createServer(
      {
        headersTimeout: HEADERS_TIMEOUT_MS,
        requestTimeout: REQUEST_TIMEOUT_MS,
        connectionsCheckingInterval: TIMEOUT_CHECK_MS,
      },
      (req, res) => this.#handle(req, res),
    );
    this.#server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    // With no 'timeout' listener of its own, the server destroys the socket.
    this.#server.setTimeout(options.stallTimeoutMs ?? STALL_TIMEOUT_MS);
    this.#server.on('connection', (socket: Socket) => this.#open.admit(socket));
  }

  /** The connections open now (tests). */
  get connectionCount(): number {
    return this.#open.count;
  }

  /** Each open connection's owner (once asked past the bound) and requests in progress (tests). */
  get connectionStates(): Array<{ owner: string | undefined; requests: number }> {
    return this.#open.states;
  }

  /** Requests being answered now, on every connection (tests). */
  get requestsInProgress(): number {
    return this.#open.requestsInProgress;
  }

  /** The bound address while listening. */
  get address(): MetricsAddress | undefined {
    return this.#address;
  }

  /**
   * Binds and starts serving. Rejects with `SEAWALL_METRICS_LISTEN_FAILED` (e.g. EADDRINUSE,
   * EACCES; `detail.errno`) or `SEAWALL_METRICS_SERVER_STATE` if already listening or closed.
   */
  listen(): Promise<MetricsAddress> {
    if (this.#state !== 'idle') {
      return Promise.reject(
        new MetricsError('SEAWALL_METRICS_SERVER_STATE', `metrics server is ${this.#state}`, {
          state: this.#state,
        }),
      );
    }
    this.#state = 'listening';
    const bound = new Promise<MetricsAddress>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        if (this.#state === 'listening') this.#state = 'idle';
        const where = `${this.#host}:${this.#port}`;
        reject(
          new MetricsError(
            'SEAWALL_METRICS_LISTEN_FAILED',
            `cannot listen on ${where}: ${err.code ?? err.message}`,
            { host: this.#host, port: this.#port, errno: err.code },
            { cause: err },
          ),
        );
      };
      this.#server.once('error', onError);
      this.#server.listen({ host: this.#host, port: this.#port }, () => {
        this.#server.off('error', onError);
        const info = this.#server.address() as AddressInfo;
        this.#address = { host: info.address, port: info.port, family: info.family };
        resolve(this.#address);
      });
    });
    this.#binding = bound.then(
      () => undefined,
      () => undefined,
    );
    return bound;
  }

  /** Stops listening and drops open connections (idle keep-alives included). Idempotent. */
  async close(): Promise<void> {
    const wasListening = this.#state === 'listening';
    this.#state = 'closed';
    if (!wasListening) return;
    // A close() racing a listen() waits for the bind to settle, so no socket outlives close().
    await this.#binding;
    this.#address = undefined;
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    if (!this.#open.requestOn(req.socket, res)) {
      // Pipelining past the bound: closed, not answered, so that nothing more of it is read.
      req.socket.destroy();
      return;
    }
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    if (path !== METRICS_PATH) {
      reply(res, 404, 'not found; metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      reply(res, 405, 'method not allowed; use GET\n');
      return;
    }
    const head = req.method === 'HEAD';
    this.#render().then(
      // Each scrape sharing the rendering answered in a task of its own: writing 6.6 MB to a loopback
      // socket copies it there and then (0.4–1 ms an answer here), sixteen times in one task else.
      (rendering) => setImmediate(() => this.#answer(res, rendering, head)),
      () => reply(res, 500, 'metrics rendering failed\n'),
    );
  }

  #answer(res: ServerResponse, rendering: MetricsRendering, head: boolean): void {
    if (res.destroyed) return;
    res.writeHead(200, {
      'Content-Type': this.#source.contentType,
      'Content-Length': rendering.bytes,
      'Cache-Control': 'no-store',
    });
    // The parts as rendered: one buffer of them all would be a copy of megabytes in one task.
    if (!head) for (const chunk of rendering.chunks) res.write(chunk);
    res.end();
  }

  /** One rendering shared by every scrape that arrives while it waits for its turn or runs. */
  #render(): Promise<MetricsRendering> {
    if (this.#rendering === undefined) {
      this.#rendering = this.#renderInTurn().finally(() => {
        this.#rendering = undefined;
      });
    }
    return this.#rendering;
  }

  async #renderInTurn(): Promise<MetricsRendering> {
    const wait = this.#nextRenderAt - performance.now();
    // Unref'd: a scrape waiting for its turn never keeps a stopping daemon alive.
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, Math.ceil(wait)).unref());
    const start = performance.now();
    // A failed rendering's time is its wall time: it reported none of its own.
    let took = Number.NaN;
    try {
      const rendering = await this.#source.render();
      took = rendering.busyMs;
      return rendering;
    } finally {
      const end = performance.now();
      if (!(took >= 0)) took = end - start;
      this.#nextRenderAt = end + Math.min(took / this.#renderShare - took, MAX_RENDER_WAIT_MS);
    }
  }
}

function reply(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}
