/**
 * Drives the TypeScript reference client (vmm/plugin-client.ts) from the conformance suite's line
 * protocol — the commands of vmm/rust/examples/conformance_driver.rs — run as a child process
 * like the C and Rust drivers, so the suite treats all three alike.
 */
import { createInterface } from 'node:readline';
import { ACTION } from '../../../protocol/index.js';
import {
  type ExitReport,
  type FallbackPolicy,
  isVmmError,
  PluginClient,
  type VerdictOutcome,
} from '../../../vmm/index.js';

const ACTION_NAMES = new Map(Object.entries(ACTION).map(([k, v]) => [v as number, k]));
const num = (s: string) => (s.startsWith('0x') ? BigInt(s) : BigInt(Number.parseInt(s, 10)));
const int = (s: string) => Number(num(s));

let config = { deadlineMs: 1000, fallback: 'inject' as FallbackPolicy, minor: 1 };
let client: PluginClient | null = null;

function verdictLine(o: VerdictOutcome): string {
  const v = o.verdict;
  const hex = Buffer.from(v.vcpuEvents).toString('hex');
  const name = ACTION_NAMES.get(v.action) ?? 'UNKNOWN';
  return `verdict ${v.seq} ${name} ${v.flags} ${v.graceMs} 0x${v.esr.toString(16)} ${hex} ${o.source}`;
}

async function exit(report: ExitReport): Promise<string> {
  if (!client) return 'error not initialised';
  return verdictLine(await client.handleExit(report));
}

/** One client per `init` and socket: a reconnect keeps its fallback-handled events for replay. */
async function connect(w: string[]): Promise<string> {
  const labels = Object.fromEntries(w.slice(7).map((kv) => kv.split('=') as [string, string]));
  const c = client !== null && client.opts.socket === w[1] ? client : newClient(w, labels);
  client = c;
  try {
    await c.connect();
    const [major, minor] = c.version.split('.');
    return `welcome ${major} ${minor} 0 ${c.sessionId} 0 ${c.maxBody}`;
  } catch (err) {
    if (isVmmError(err) && typeof err.detail.wireCode === 'number') {
      const s = err.detail.supported as { major: number; minor: number } | undefined;
      return `refused ${err.detail.wireCode} ${s?.major ?? 0} ${s?.minor ?? 0}`;
    }
    return `error ${(err as Error).message}`;
  }
}

function newClient(w: string[], labels: Record<string, string>): PluginClient {
  const c = new PluginClient({
    socket: w[1] as string,
    vmId: w[2] as string,
    caps: int(w[3] as string),
    vcpuCount: int(w[4] as string),
    vmmPid: int(w[5] as string),
    extAbtEsrCap: int(w[6] as string),
    labels,
    deadlineMs: config.deadlineMs,
    helloTimeoutMs: config.deadlineMs,
    fallback: config.fallback,
    minor: config.minor,
    reconnect: { initialMs: 3_600_000, maxMs: 3_600_000 }, // the suite reconnects by command
  });
  c.on('protocol-error', () => {});
  c.on('daemon-error', () => {});
  return c;
}

/** What the daemon's frames have done so far: late verdicts handled, replays acknowledged. */
let seen = 0;
const progress = (c: PluginClient) => c.stats.lateVerdicts + c.stats.replayed;

/** Waits up to `ms` for something from the daemon to be handled since the last poll. */
async function poll(ms: number): Promise<string> {
  const c = client;
  if (!c) return 'error not initialised';
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && progress(c) === seen) await new Promise((r) => setTimeout(r, 5));
  const handled = progress(c) - seen;
  seen = progress(c);
  return `polled ${handled}`;
}

async function run(w: string[]): Promise<string> {
  switch (w[0]) {
    case 'init':
      await client?.close();
      client = null;
      seen = 0;
      config = {
        deadlineMs: int(w[1] as string),
        fallback: w[2] as FallbackPolicy,
        minor: int(w[3] as string),
      };
      return 'ok';
    case 'connect':
      return connect(w);
    case 'sea':
      return exit({
        type: 'sea',
        vcpu: int(w[1] as string),
        kvmFlags: num(w[2] as string),
        esr: num(w[3] as string),
        gva: num(w[4] as string),
        gpa: num(w[5] as string),
      });
    case 'nisv':
      return exit({
        type: 'nisv',
        vcpu: int(w[1] as string),
        esrIss: num(w[2] as string),
        faultIpa: num(w[3] as string),
      });
    case 'mmio':
      return exit({
        type: 'mmio',
        vcpu: int(w[1] as string),
        physAddr: num(w[2] as string),
        data: new Uint8Array(8),
        len: int(w[3] as string),
        isWrite: int(w[4] as string) !== 0,
      });
    case 'sigbus':
      return exit({
        type: 'sigbus',
        vcpu: w[1] === 'none' ? null : int(w[1] as string),
        siCode: int(w[2] as string),
        addrLsb: int(w[3] as string),
        gpa: w[4] === 'none' ? null : num(w[4] as string),
      });
    case 'applied':
      client?.applied(int(w[1] as string), int(w[2] as string));
      return 'ok';
    case 'applied-fallback':
      client?.applied(int(w[1] as string), int(w[2] as string), int(w[3] as string));
      return 'ok';
    case 'poll':
      return poll(int(w[1] as string));
    case 'stats': {
      const s = client?.stats;
      return `stats ${s?.fallbacks ?? 0} ${s?.replayed ?? 0} ${s?.lateVerdicts ?? 0} ${client?.replayQueue ?? 0}`;
    }
    case 'close':
      // GOODBYE's reason is the client's own (NORMAL); the suite reads only that one came.
      await client?.close();
      return 'ok';
    default:
      return `error unknown command ${w[0]}`;
  }
}

const lines = createInterface({ input: process.stdin });
let chain = Promise.resolve();
lines.on('line', (line) => {
  const w = line.trim().split(/\s+/);
  if (w[0] === '') return;
  chain = chain.then(async () => {
    process.stdout.write(`${await run(w)}\n`);
  });
});
lines.on('close', () => {
  chain.then(() => client?.close()).then(() => process.exit(0));
});
