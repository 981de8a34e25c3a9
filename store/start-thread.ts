/**
 * Starts one of seawall's worker threads (the store's, the policy loader's) from its module's URL. Compiled, the URL names a .js file
 * beside the caller's (one per thread in dist/bin/, scripts/bundle.mjs). Under tsx (the tests
 * import .ts) it names a .ts file, and Node 20 does not hand tsx's loader to workers: the worker
 * then registers the loader itself before importing the thread's module.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * tsx's API, resolved once as this module loads rather than at each start: resolved while the
 * process is out of file descriptors, it comes back wrong (tsx's package.json unread, so its
 * exports ignored), Node keeps that answer, and no thread would start again. Compiled, there is
 * no tsx to resolve.
 */
const TSX_API = import.meta.url.endsWith('.ts') ? import.meta.resolve('tsx/esm/api') : null;

export function startThread(url: URL, options: WorkerOptions): Worker {
  if (!url.pathname.endsWith('.ts')) return new Worker(url, options);
  const api = TSX_API ?? import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(api)}).then((t) => { t.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { ...options, eval: true });
}
