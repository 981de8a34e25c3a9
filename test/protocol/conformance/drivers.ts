/**
 * The three plugin implementations as child processes speaking the conformance line protocol
 * (vmm/rust/examples/conformance_driver.rs documents it): the C library through c-driver.c, the
 * Rust crate through its example, the TypeScript client through ts-driver.ts. Each is built once.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { findTool, requireTool } from '../../helpers/tools.js';

const run = promisify(execFile);
const ROOT = new URL('../../../', import.meta.url).pathname;
export const RUST_DIR = join(ROOT, 'vmm/rust');
const C_DIR = join(ROOT, 'vmm/c');

export type ImplName = 'c' | 'rust' | 'ts';
export const IMPLS: readonly ImplName[] = ['c', 'rust', 'ts'];

/** cargo on PATH, else where rustup puts it (CI's machine has it at /root/.cargo/bin/cargo). */
export function cargoPath(t: TestContext): string | null {
  const home = join(process.env.HOME ?? '/root', '.cargo/bin/cargo');
  for (const c of [process.env.CARGO, 'cargo', home, '/root/.cargo/bin/cargo'])
    if (c && findTool(c)) return findTool(c);
  return requireTool(t, 'cargo', 'cargo (rustup; scripts/install-system-deps.sh checks for it)');
}

const builds = new Map<ImplName, Promise<string[]>>();
/** Where the C driver is built, once per test file; removed when the file ends. */
const buildDirs: string[] = [];
after(() => {
  for (const dir of buildDirs) rmSync(dir, { recursive: true, force: true });
});

/** The command line that starts `impl`'s driver, building it on first use; null when skipped. */
async function commandFor(t: TestContext, impl: ImplName): Promise<string[] | null> {
  if (impl === 'ts')
    return [process.execPath, '--import', 'tsx', join(ROOT, 'test/protocol/conformance/ts-driver.ts')];
  const tool = impl === 'c' ? requireTool(t, 'gcc', 'gcc') : cargoPath(t);
  if (!tool) return null;
  let built = builds.get(impl);
  if (!built) {
    built =
      impl === 'c'
        ? (async () => {
            const dir = mkdtempSync(join(tmpdir(), 'seawall-cdrv-'));
            buildDirs.push(dir);
            const out = join(dir, 'c-driver');
            const flags = ['-std=c11', '-Wall', '-Wextra', '-Werror', '-pedantic', '-O2', '-I', C_DIR];
            const src = [join(ROOT, 'test/protocol/conformance/c-driver.c'), join(C_DIR, 'seawall_plugin.c')];
            await run(tool, [...flags, '-o', out, ...src]);
            return [out];
          })()
        : (async () => {
            const args = ['build', '--offline', '--quiet', '--example', 'conformance_driver'];
            await run(tool, args, { cwd: RUST_DIR, timeout: 170_000 });
            return [join(RUST_DIR, 'target/debug/examples/conformance_driver')];
          })();
    builds.set(impl, built);
  }
  return built;
}

/** A running driver: one command line in, one reply line out. */
export class Driver {
  readonly #proc: ChildProcess;
  readonly #lines: string[] = [];
  #waiting: ((line: string) => void) | null = null;
  readonly exited: Promise<void>;

  constructor(proc: ChildProcess) {
    this.#proc = proc;
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const w = this.#waiting;
      this.#waiting = null;
      if (w) w(line);
      else this.#lines.push(line);
    });
    proc.stderr?.resume();
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
  }

  /** Sends one command; rejects when no reply comes within `timeoutMs` or the driver exits. */
  send(command: string, timeoutMs = 20_000): Promise<string> {
    this.#proc.stdin?.write(`${command}\n`);
    const early = this.#lines.shift();
    if (early !== undefined) return Promise.resolve(early);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no reply to '${command}' in ${timeoutMs} ms`)),
        timeoutMs,
      );
      const done = (line: string) => {
        clearTimeout(timer);
        resolve(line);
      };
      this.#waiting = done;
      this.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`driver exited before replying to '${command}'`));
      });
    });
  }

  async stop(): Promise<void> {
    if (this.#proc.exitCode !== null || this.#proc.signalCode !== null) return;
    this.#proc.kill('SIGKILL');
    await this.exited;
  }
}

/** Starts `impl`'s driver (null when its toolchain is missing and this is not CI). */
export async function startDriver(t: TestContext, impl: ImplName): Promise<Driver | null> {
  const cmd = await commandFor(t, impl);
  if (!cmd) return null;
  const [bin, ...args] = cmd as [string, ...string[]];
  return new Driver(spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] }));
}
