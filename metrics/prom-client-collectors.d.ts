/**
 * prom-client's default collectors, one module each (node_modules/prom-client/lib/metrics): each
 * registers its metrics on `registry`, named with `config.prefix`. Imported one by one by
 * metrics/node-metrics.ts, which leaves one of them out.
 */
declare module 'prom-client/lib/metrics/*' {
  import type { Registry } from 'prom-client';

  const collect: (
    registry: Registry,
    config: { prefix?: string; eventLoopMonitoringPrecision?: number },
  ) => void;
  export = collect;
}
