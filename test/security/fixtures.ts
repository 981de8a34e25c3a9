/**
 * Shared by the hardening tests (docs/security.md): a well-behaved VM that keeps asking for
 * verdicts and records their latencies while an attack runs, policy files, and bounded waits.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PluginClient } from '../../vmm/plugin-client.js';
import { seaExit } from '../../vmm/sample-events.js';
import { DEFAULT_CAPS } from '../../vmm/simulator.js';

/** Polls `cond` (an event we cannot subscribe to, e.g. a file or a daemon's answer) until a deadline. */
export async function until(
  cond: () => boolean | Promise<boolean>,
  ms = 30_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function writePolicy(dir: string, name: string, body: string[]): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, `${['version: 1', `name: ${name}`, ...body].join('\n')}\n`);
  return file;
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/**
 * A VM that asks for a verdict, waits for it, and asks again, recording each round trip (ms) and
 * every fallback, until stopped. What an attack must not disturb.
 */
export class LatencyProbe {
  readonly latencies: number[] = [];
  fallbacks = 0;
  #client: PluginClient;
  #running = false;
  #loop: Promise<void> = Promise.resolve();
  #recording = false;

  constructor(socket: string, vmId = 'probe-vm') {
    this.#client = new PluginClient({ socket, vmId, vcpuCount: 1, caps: DEFAULT_CAPS, deadlineMs: 5000 });
  }

  async start(): Promise<void> {
    await this.#client.connect();
    this.#running = true;
    this.#loop = (async () => {
      while (this.#running) {
        const out = await this.#client.handleExit(seaExit({ gpa: 0x7000n }));
        if (!this.#recording) continue;
        if (out.source !== 'daemon') this.fallbacks++;
        this.latencies.push(Number(out.latencyNs) / 1e6);
        // One exit every 2 ms: a busy VM, not a benchmark.
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
  }

  /** Only rounds between record(true) and record(false) count. */
  record(on: boolean): void {
    this.#recording = on;
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
    await this.#client.close();
  }
}
