/**
 * A private, read-only apt view of Debian's arm64 archive: its own sources list, package lists and
 * download cache under a directory the harness owns, so /etc/apt, dpkg's status and the host's
 * architectures stay untouched. The mirror is the one this machine's apt already uses (read from
 * its configuration at run time), never a host name written here.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Whether dpkg-deb reads the package whole: its control data and every member's listing. */
async function readableDeb(file: string): Promise<boolean> {
  try {
    await run('dpkg-deb', ['--contents', file], { maxBuffer: 64 * 1024 * 1024 });
    return true;
  } catch {
    return false;
  }
}

export class RealKvmSetupError extends Error {
  readonly code = 'SEAWALL_REAL_KVM_SETUP';
}

export interface Mirror {
  uri: string;
  keyring: string | null;
}

/** The first Debian archive the machine's apt sources name (not its security archive). */
export function machineMirror(etc = '/etc/apt'): Mirror {
  const candidates: Mirror[] = [];
  const dir = join(etc, 'sources.list.d');
  const files = existsSync(dir) ? readdirSync(dir).sort() : [];
  for (const f of files.filter((n) => n.endsWith('.sources'))) {
    for (const stanza of readFileSync(join(dir, f), 'utf8').split(/\n\s*\n/)) {
      const field = (k: string) => new RegExp(`^${k}:\\s*(.+)$`, 'mi').exec(stanza)?.[1]?.trim();
      const uri = field('URIs')?.split(/\s+/)[0];
      const suites = field('Suites') ?? '';
      if (!uri || /-security\b/.test(suites) || !/\bdeb\b/.test(field('Types') ?? '')) continue;
      candidates.push({ uri, keyring: field('Signed-By') ?? null });
    }
  }
  const list = join(etc, 'sources.list');
  if (existsSync(list)) {
    for (const line of readFileSync(list, 'utf8').split('\n')) {
      const m = /^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)/.exec(line.trim());
      if (!m || /-security\b/.test(m[3] ?? '')) continue;
      const signed = /signed-by=(\S+)/.exec(m[1] ?? '')?.[1] ?? null;
      candidates.push({ uri: m[2] as string, keyring: signed });
    }
  }
  const first = candidates[0];
  if (!first) throw new RealKvmSetupError(`no Debian archive found in ${etc}/sources.list(.d)`);
  return first;
}

export class AptView {
  readonly root: string;
  readonly archives: string;
  readonly #opts: string[];

  /** `suites` are suite names of the machine's mirror (bookworm, trixie-backports, …). */
  constructor(root: string, mirror: Mirror, suites: readonly string[]) {
    this.root = root;
    this.archives = join(root, 'debs');
    for (const d of ['lists/partial', 'cache/archives/partial', 'debs'])
      mkdirSync(join(root, d), { recursive: true });
    const signed = mirror.keyring ? ` signed-by=${mirror.keyring}` : '';
    const sources = suites.map((s) => `deb [arch=arm64${signed}] ${mirror.uri} ${s} main`).join('\n');
    writeFileSync(join(root, 'sources.list'), `${sources}\n`);
    this.#opts = [
      `Dir::Etc::SourceList=${join(root, 'sources.list')}`,
      'Dir::Etc::SourceParts=/dev/null',
      `Dir::State::Lists=${join(root, 'lists')}`,
      `Dir::Cache=${join(root, 'cache')}`,
      // Images often switch apt's binary caches off; this view keeps its own, or every apt-cache
      // call re-reads every list.
      `Dir::Cache::pkgcache=${join(root, 'cache', 'pkgcache.bin')}`,
      `Dir::Cache::srcpkgcache=${join(root, 'cache', 'srcpkgcache.bin')}`,
      'Dir::State::status=/dev/null',
      'APT::Architecture=arm64',
      'APT::Architectures::=arm64',
      'Acquire::Languages=none',
      'Debug::NoLocking=1',
      // apt drops to _apt for downloads, which cannot write into a private cache owned by root.
      ...(process.getuid?.() === 0 ? ['APT::Sandbox::User=root'] : []),
    ].flatMap((o) => ['-o', o]);
  }

  async #apt(tool: string, args: string[], cwd?: string): Promise<string> {
    try {
      const { stdout } = await run(tool, [...this.#opts, ...args], {
        cwd,
        maxBuffer: 64 * 1024 * 1024,
        timeout: 300_000,
        env: { ...process.env, LC_ALL: 'C' },
      });
      return stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new RealKvmSetupError(`${tool} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
    }
  }

  /** Refreshes the lists; any suite that cannot be fetched fails the run (no stale answers). */
  async update(): Promise<void> {
    await this.#apt('apt-get', ['update', '-q', '--error-on=any']);
  }

  /** Every version of `pkg` with the suite it comes from. */
  async versions(pkg: string): Promise<{ version: string; suite: string }[]> {
    const out = await this.#apt('apt-cache', ['madison', pkg]);
    return out
      .split('\n')
      .map((l) => l.split('|').map((x) => x.trim()))
      .filter((f) => f.length >= 3 && f[0] === pkg)
      .map((f) => ({ version: f[1] as string, suite: (f[2] ?? '').split(/\s+/)[1]?.split('/')[0] ?? '' }));
  }

  /** The names `pkg=version` depends on (alternatives flattened). */
  async depends(pkg: string, version: string): Promise<string[]> {
    const out = await this.#apt('apt-cache', ['show', `${pkg}=${version}`]);
    const line = /^Depends:\s*(.+)$/m.exec(out)?.[1] ?? '';
    return line.split(/[,|]/).map((d) => d.trim().split(/\s+/)[0] as string);
  }

  /** Downloads `pkg=version` into the cache unless it is there; returns the .deb path. */
  async download(pkg: string, version: string): Promise<string> {
    const file = join(this.archives, `${pkg}_${version.replace(/:/g, '%3a')}_arm64.deb`);
    // A cached file that dpkg-deb cannot read (cut short, overwritten) is fetched again.
    if (existsSync(file) && !(await readableDeb(file))) rmSync(file, { force: true });
    if (!existsSync(file)) await this.#apt('apt-get', ['download', '-q', `${pkg}=${version}`], this.archives);
    if (!existsSync(file)) throw new RealKvmSetupError(`apt-get download ${pkg}=${version} left no ${file}`);
    return file;
  }
}
