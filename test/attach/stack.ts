/**
 * An in-process daemon core for component tests: the real plugin server and pipeline on a real
 * Unix socket, an event bus, a test decision provider, and whatever sinks the test adds (the
 * attach server, the action sink). The composition mirrors what daemon/service.ts wires.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { AttachServer, type AttachServerOptions } from '../../attach/index.js';
import { Pipeline, type PipelineOptions } from '../../daemon/pipeline.js';
import { PluginServer } from '../../daemon/plugin-server.js';
import { EventBus, type EventRecord } from '../../events/bus.js';
import { KVM_RUN_DEFAULT_MMAP_SIZE } from '../../kvm/index.js';
import type { Decision, DecisionProvider, PolicyEvent } from '../../policies/decision.js';
import { CAP } from '../../protocol/index.js';
import { PluginClient } from '../../vmm/plugin-client.js';
import { PATIENT_DEADLINE_MS } from '../helpers/daemon.js';

export interface Stack {
  dir: string;
  socket: string;
  bus: EventBus;
  pipeline: Pipeline;
  server: PluginServer;
  /** Every record the pipeline produced, in order. */
  records: EventRecord[];
  close(): Promise<void>;
}

/** A provider deciding with `decide`; the rest of the Decision is filled in. */
export type TestDecision = DistributiveOmit<Decision, 'policyVersion'>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export function provider(decide: (e: PolicyEvent) => TestDecision): DecisionProvider {
  return {
    version: 'test-policy',
    decide: (e) => ({ policyVersion: 'test-policy', ...decide(e) }) as Decision,
  };
}

export const INJECT: TestDecision = {
  rule: 'inject-data',
  action: 'inject',
  inject: { kind: 'data', via: 'kvm' },
};

export async function startStack(
  policy: DecisionProvider,
  kernelExit?: PipelineOptions['kernelExit'],
  limits: { frameTimeoutMs?: number; writeHighWater?: number; maxSessions?: number } = {},
): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-stack-'));
  const socket = join(dir, 'plugin.sock');
  const bus = new EventBus();
  bus.onSinkError = (sink, hook, err) => {
    throw new Error(`sink ${sink} failed in ${hook}: ${(err as Error).stack}`);
  };
  const records: EventRecord[] = [];
  bus.add({ name: 'recorder', afterReply: (b) => records.push(...b) });
  const pipeline = new Pipeline({ policy: () => policy, bus, ...(kernelExit ? { kernelExit } : {}) });
  const uid = process.getuid?.() ?? 0;
  const server = new PluginServer({
    bus,
    pipeline,
    allow: { uids: [uid, 0], gids: [] },
    limits: { maxSessions: 64, maxInFlight: 1024, maxBody: 16 * 1024, writeHighWater: 256 * 1024, ...limits },
    heartbeatMs: 60_000,
  });
  await server.listen({ path: socket, mode: 0o600 });
  return {
    dir,
    socket,
    bus,
    pipeline,
    server,
    records,
    async close() {
      await server.stop(200);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An attach server at `<dir>/attach.sock` taking sealed stand-ins, not yet listening. */
export function standInAttachServer(dir: string, opts: Partial<AttachServerOptions> = {}): AttachServer {
  return new AttachServer({
    path: join(dir, 'attach.sock'),
    mode: 0o600,
    mmapSize: KVM_RUN_DEFAULT_MMAP_SIZE,
    allowStandIns: true,
    maxConnections: 16,
    idleMs: 60_000,
    maxVcpus: 16_384,
    ...opts,
  });
}

export interface AttachStack {
  stack: Stack;
  attach: AttachServer;
  /** Runs `close` when the test ends, before the servers close (latest first). */
  own(close: () => unknown): void;
  /** A plugin session of `vcpuCount` vCPUs from this process, closed when the test ends. */
  plugin(vmId: string, vcpuCount: number): Promise<PluginClient>;
}

/**
 * A stack injecting on every event and a listening stand-in attach server on its bus, both closed
 * when the test ends, after whatever the test handed to `own`.
 */
export async function attachStack(t: TestContext, opts: Partial<AttachServerOptions>): Promise<AttachStack> {
  const stack = await startStack(provider(() => INJECT));
  const attach = standInAttachServer(stack.dir, opts);
  attach.listen();
  stack.bus.add(attach.sink());
  const owned: Array<() => unknown> = [];
  // After-hooks run FIFO: what the test opened goes before the servers.
  t.after(async () => {
    for (const close of owned.splice(0).reverse()) await close();
  });
  t.after(async () => {
    attach.close();
    await stack.close();
  });
  const own = (close: () => unknown) => {
    owned.push(close);
  };
  return {
    stack,
    attach,
    own,
    async plugin(vmId, vcpuCount) {
      const c = new PluginClient({
        socket: stack.socket,
        vmId,
        vcpuCount,
        caps: CAP.SEA_TO_USER,
        deadlineMs: PATIENT_DEADLINE_MS,
      });
      own(() => c.close());
      await c.connect();
      return c;
    },
  };
}
