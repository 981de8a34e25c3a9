/**
 * Starts one of seawall's worker threads (the store's, the policy loader's) from its module's URL. Compiled, the URL names a .js file
 * beside the caller's (one per thread in dist/bin/, scripts/bundle.mjs). Under tsx (the tests
 * import .ts) it names a .ts file, and Node 20 does not hand tsx's loader to workers: the worker
 * then registers the loader itself before importing the thread's module.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

export function startThread(url: URL, options: WorkerOptions): Worker {
  if (!url.pathname.endsWith('.ts')) return new Worker(url, options);
  const api = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(api)}).then((t) => { t.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { ...options, eval: true });
}
