/**
 * The two kernels of the lane, resolved at run time through the private apt view: Debian
 * bookworm's 6.1 (linux-image-arm64 of bookworm) and the newest 7.x that Debian's newer suites
 * offer. Each is downloaded once into the cache and reduced to what the lane boots: the kernel
 * image, and the modules (with their dependencies) that carry virtio-pci and virtio-console where
 * those are not built in.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { type AptView, RealKvmSetupError } from './apt-view.js';

const run = promisify(execFile);

/** Suites read by the view: bookworm for 6.1, the rest searched for 7.x. */
export const LANE_SUITES = [
  'bookworm',
  'bookworm-backports',
  'trixie',
  'trixie-backports',
  'sid',
  'experimental',
];
const NEWER = new Set(LANE_SUITES.slice(1));

export type KernelLine = '6.1' | '7.x';

export interface LaneKernel {
  line: KernelLine;
  /** The metapackage version chosen, e.g. 6.1.176-1 or 7.3.4-1~bpo13+1. */
  version: string;
  suite: string;
  /** The package whose .deb holds the image. */
  pkg: string;
  image: string;
  /** Module files to load, dependencies first (empty when virtio is built in). */
  modules: string[];
}

/** dpkg's own version order. */
function newer(a: string, b: string): boolean {
  return spawnSync('dpkg', ['--compare-versions', a, 'gt', b]).status === 0;
}

async function choose(view: AptView, line: KernelLine): Promise<{ version: string; suite: string }> {
  const all = await view.versions('linux-image-arm64');
  const fits = all.filter((v) =>
    line === '6.1'
      ? v.suite === 'bookworm' && v.version.startsWith('6.1.')
      : NEWER.has(v.suite) && /^7\./.test(v.version),
  );
  let best = fits[0];
  for (const v of fits) if (best && newer(v.version, best.version)) best = v;
  if (!best) throw new RealKvmSetupError(`no ${line} linux-image-arm64 in ${LANE_SUITES.join(', ')}`);
  return best;
}

/** linux-image-arm64 → linux-image-X-arm64 → (7.x) linux-binary-X-arm64, which holds the image. */
async function imagePackage(view: AptView, version: string): Promise<string> {
  const image = (await view.depends('linux-image-arm64', version)).find((d) =>
    /^linux-image-\S+-arm64$/.test(d),
  );
  if (!image) throw new RealKvmSetupError(`linux-image-arm64=${version} names no linux-image-*-arm64`);
  const binary = (await view.depends(image, version)).find((d) => /^linux-binary-\S+-arm64$/.test(d));
  return binary ?? image;
}

/** Extracts the image and the virtio modules once; a stamp marks a complete extraction. */
async function extract(deb: string, into: string): Promise<void> {
  if (existsSync(join(into, '.complete'))) return;
  rmSync(into, { recursive: true, force: true });
  mkdirSync(into, { recursive: true });
  const patterns = ['*vmlinuz*', '*/modules.builtin', '*/virtio*.ko*'];
  // pipefail: a dpkg-deb that fails (a truncated or foreign file) fails the extraction, not only tar.
  const r = spawnSync(
    'bash',
    [
      '-c',
      'set -o pipefail; dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" --wildcards "$3" "$4" "$5"',
      'bash',
      deb,
      into,
      ...patterns,
    ],
    { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 },
  );
  // tar answers 2 for any fatal error; only patterns that matched nothing (a kernel with virtio
  // built in has no modules) are not one.
  const onlyUnmatched = r.stderr
    .split('\n')
    .filter(Boolean)
    .every((l) => /Not found in archive|Exiting with failure status due to previous errors/.test(l));
  if (r.status !== 0 && !(r.status === 2 && onlyUnmatched))
    throw new RealKvmSetupError(`extracting ${deb}: exit ${r.status}: ${r.stderr.trim()}`);
  if (find(into, (p) => /\/vmlinuz[^/]*$/.test(p)).length === 0)
    throw new RealKvmSetupError(`${deb} holds no vmlinuz`);
  writeFileSync(join(into, '.complete'), '');
}

function find(dir: string, test: (path: string) => boolean, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) find(p, test, out);
    else if (test(p)) out.push(p);
  }
  return out;
}

/** A module's `depends=` from its .modinfo section (what depmod would read; a .deb ships no modules.dep). */
function modinfoDepends(file: string): string[] {
  const text = readFileSync(file).toString('latin1');
  const m = /\0depends=([^\0]*)\0/.exec(text);
  return (m?.[1] ?? '').split(',').filter(Boolean);
}

const modName = (file: string) =>
  (file.split('/').pop() ?? '').replace(/\.ko(\.\w+)?$/, '').replace(/-/g, '_');

async function decompressed(file: string): Promise<string> {
  if (file.endsWith('.xz')) {
    await run('xz', ['-dkf', file]);
    return file.slice(0, -3);
  }
  if (file.endsWith('.zst')) {
    await run('zstd', ['-dqf', file]);
    return file.slice(0, -4);
  }
  return file;
}

/** virtio_pci and virtio_console with their dependencies, in load order; none when built in. */
async function virtioModules(root: string): Promise<string[]> {
  const byName = new Map<string, string>();
  for (const f of find(root, (p) => /\.ko(\.\w+)?$/.test(p))) byName.set(modName(f), await decompressed(f));
  const builtinFile = find(root, (p) => p.endsWith('/modules.builtin'))[0];
  const builtin = new Set(
    builtinFile ? readFileSync(builtinFile, 'utf8').split('\n').filter(Boolean).map(modName) : [],
  );
  const order: string[] = [];
  const visit = (name: string) => {
    if (order.includes(name) || builtin.has(name)) return;
    const file = byName.get(name);
    if (!file) throw new RealKvmSetupError(`module ${name} is neither built in nor in the package`);
    for (const d of modinfoDepends(file)) visit(d);
    order.push(name);
  };
  // A kernel without modules at all (7.x's linux-binary package) has virtio built in.
  if (byName.size === 0) return [];
  for (const name of ['virtio_pci', 'virtio_console']) visit(name);
  return order.map((n) => byName.get(n) as string);
}

/** Resolves, downloads (cached) and unpacks the kernel of `line`. */
export async function laneKernel(view: AptView, line: KernelLine): Promise<LaneKernel> {
  const { version, suite } = await choose(view, line);
  const pkg = await imagePackage(view, version);
  const deb = await view.download(pkg, version);
  const into = join(view.root, 'unpacked', `${pkg}_${version}`);
  await extract(deb, into);
  const image = find(into, (p) => /\/vmlinuz[^/]*$/.test(p))[0];
  if (!image) throw new RealKvmSetupError(`${relative(view.root, deb)} holds no vmlinuz`);
  const modules = await virtioModules(into);
  // bookworm's 6.1 builds virtio-pci and virtio-console as modules: none found is a bad package,
  // not a kernel that boots without them.
  if (line === '6.1' && modules.length === 0)
    throw new RealKvmSetupError(`${relative(view.root, deb)} holds no virtio modules`);
  return { line, version, suite, pkg, image, modules };
}
