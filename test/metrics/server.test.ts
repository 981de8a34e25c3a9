import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import {
  DEFAULT_METRICS_HOST,
  DEFAULT_METRICS_PORT,
  isMetricsError,
  MetricsServer,
  type MetricsSource,
  SeawallMetrics,
} from '../../metrics/index.js';
import { within } from '../helpers/wait.js';
import { rendered, value } from './exposition.js';

interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** One HTTP request on a fresh connection. */
function http(port: number, method: string, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('MetricsServer over real HTTP', () => {
  const metrics = new SeawallMetrics({ version: '0.1.0' });
  const server = new MetricsServer(metrics, { port: 0 });
  let port = 0;

  before(async () => {
    const address = await server.listen();
    assert.equal(address.host, '127.0.0.1');
    assert.ok(address.port > 0);
    port = address.port;
  });
  after(() => server.close());

  it('serves GET /metrics with the recorded counts and the Prometheus content type', async () => {
    metrics.memoryError('vm-a', 'sea', 'uer');
    metrics.memoryError('vm-a', 'sea', 'uer');
    metrics.memoryError('vm-b', 'sigbus', 'unknown');
    const res = await http(port, 'GET', '/metrics');
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], metrics.contentType);
    assert.match(metrics.contentType, /^text\/plain; version=0\.0\.4/);
    assert.equal(
      value(res.body, 'seawall_memory_errors_total', { vm: 'vm-a', kind: 'sea', severity: 'uer' }),
      2,
    );
    assert.equal(
      value(res.body, 'seawall_memory_errors_total', { vm: 'vm-b', kind: 'sigbus', severity: 'unknown' }),
      1,
    );
    assert.ok(value(res.body, 'seawall_process_start_time_seconds'), 'default process metrics are prefixed');
  });

  it('ignores the query string', async () => {
    const res = await http(port, 'GET', '/metrics?name[]=up');
    assert.equal(res.status, 200);
  });

  it('answers HEAD with headers only', async () => {
    const res = await http(port, 'HEAD', '/metrics');
    assert.equal(res.status, 200);
    assert.equal(res.body, '');
    assert.ok(Number(res.headers['content-length']) > 0);
  });

  it('answers 404 for other paths and 405 with Allow for other methods', async () => {
    for (const path of ['/', '/metrics/', '/metricsx', '/favicon.ico']) {
      assert.equal((await http(port, 'GET', path)).status, 404, path);
    }
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const res = await http(port, method, '/metrics');
      assert.equal(res.status, 405, method);
      assert.equal(res.headers.allow, 'GET, HEAD');
    }
  });

  it('writes a rendering made of several parts whole, in order, with their length', async () => {
    const parts = ['# HELP a A\n# TYPE a counter\na 1\n', '\n# HELP b B\n', '# TYPE b gauge\nb{x="é"} 2\n'];
    const chunks = parts.map((part) => Buffer.from(part));
    const bytes = chunks.reduce((n, c) => n + c.length, 0);
    const source: MetricsSource = {
      contentType: 'text/plain',
      render: async () => ({ chunks, bytes, busyMs: 0, longestSliceMs: 0 }),
    };
    const parted = new MetricsServer(source, { port: 0 });
    const { port: p } = await parted.listen();
    try {
      // A body short of its Content-Length would leave the answer unfinished: the wait has a deadline.
      const res = await within('the whole answer', http(p, 'GET', '/metrics'));
      assert.equal(res.body, parts.join(''));
      assert.equal(Number(res.headers['content-length']), bytes);
    } finally {
      await parted.close();
    }
  });

  it('answers 500 when rendering fails and keeps serving', async () => {
    let fail = true;
    const source: MetricsSource = {
      contentType: 'text/plain',
      render: () => (fail ? Promise.reject(new Error('boom')) : Promise.resolve(rendered('x 1\n'))),
    };
    const flaky = new MetricsServer(source, { port: 0 });
    const { port: p } = await flaky.listen();
    try {
      assert.equal((await http(p, 'GET', '/metrics')).status, 500);
      fail = false;
      assert.equal((await http(p, 'GET', '/metrics')).body, 'x 1\n');
    } finally {
      await flaky.close();
    }
  });
});

describe('MetricsServer paces its renderings', () => {
  it('after a rendering that took d, the next starts d / share − d later; scrapes meanwhile share it and read values no older than themselves', async () => {
    const spans: [number, number][] = [];
    const source: MetricsSource = {
      contentType: 'text/plain',
      async render() {
        const start = performance.now();
        // 20 ms on the event loop, as rendering a large fleet's series takes.
        while (performance.now() - start < 20);
        const end = performance.now();
        spans.push([start, end]);
        return rendered(`renderings ${spans.length}\n`, end - start);
      },
    };
    const paced = new MetricsServer(source, { port: 0, maxRenderShare: 0.1 });
    const { port: p } = await paced.listen();
    try {
      assert.equal((await http(p, 'GET', '/metrics')).body, 'renderings 1\n');
      const asked = performance.now();
      const replies = await Promise.all(Array.from({ length: 5 }, () => http(p, 'GET', '/metrics')));
      assert.deepEqual(
        replies.map((r) => [r.status, r.body]),
        Array.from({ length: 5 }, () => [200, 'renderings 2\n']),
        'five scrapes, one rendering',
      );
      const [[start1, end1], [start2]] = spans as [[number, number], [number, number]];
      const took = end1 - start1;
      // A lower bound only: a busy machine can make the wait longer, never shorter.
      assert.ok(
        start2 - end1 >= 9 * took - 5,
        `the second rendering started ${(start2 - end1).toFixed(1)} ms after the first, which took ${took.toFixed(1)} ms`,
      );
      assert.ok(start2 >= asked, 'rendered after the scrapes came');
    } finally {
      await paced.close();
    }
  });

  it('paces on the time its slices took, as the rendering reports it, not on its wall time', async () => {
    const starts: number[] = [];
    // Rendered at once, in slices that (the source says) took 300 ms of the event loop in all.
    const source: MetricsSource = {
      contentType: 'text/plain',
      render: async () => {
        starts.push(performance.now());
        return rendered(`renderings ${starts.length}\n`, 300);
      },
    };
    const paced = new MetricsServer(source, { port: 0, maxRenderShare: 0.5 });
    const { port: p } = await paced.listen();
    try {
      assert.equal((await http(p, 'GET', '/metrics')).body, 'renderings 1\n');
      assert.equal((await http(p, 'GET', '/metrics')).body, 'renderings 2\n');
      const [start1, start2] = starts as [number, number];
      // A lower bound only: after 300 ms of slices at a share of 0.5, the next waits 300 ms.
      assert.ok(
        start2 - start1 >= 300 - 5,
        `the second rendering started ${(start2 - start1).toFixed(1)} ms after the first`,
      );
    } finally {
      await paced.close();
    }
  });

  it('refuses a share outside (0, 1]', () => {
    for (const maxRenderShare of [0, -0.1, 1.5, Number.NaN])
      assert.throws(
        () => new MetricsServer(new SeawallMetrics({ defaultMetrics: false }), { maxRenderShare }),
        (e: unknown) => isMetricsError(e) && e.code === 'SEAWALL_METRICS_INVALID_OPTION',
      );
  });
});

describe('MetricsServer lifecycle', () => {
  const source = new SeawallMetrics({ defaultMetrics: false });

  it('defaults to 127.0.0.1:9464', () => {
    assert.equal(DEFAULT_METRICS_HOST, '127.0.0.1');
    assert.equal(DEFAULT_METRICS_PORT, 9464);
    assert.equal(new MetricsServer(source).address, undefined);
  });

  it('rejects an address in use with SEAWALL_METRICS_LISTEN_FAILED / EADDRINUSE', async () => {
    const first = new MetricsServer(source, { port: 0 });
    const { port } = await first.listen();
    const second = new MetricsServer(source, { port });
    try {
      await assert.rejects(second.listen(), (err: unknown) => {
        assert.ok(isMetricsError(err, 'SEAWALL_METRICS_LISTEN_FAILED'));
        assert.equal(err.detail.errno, 'EADDRINUSE');
        return true;
      });
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('refuses a second listen() and stops accepting after close()', async () => {
    const server = new MetricsServer(source, { port: 0 });
    const { port } = await server.listen();
    await assert.rejects(server.listen(), (err: unknown) =>
      isMetricsError(err, 'SEAWALL_METRICS_SERVER_STATE'),
    );
    await server.close();
    await server.close();
    assert.equal(server.address, undefined);
    await assert.rejects(http(port, 'GET', '/metrics'), { code: 'ECONNREFUSED' });
    await assert.rejects(server.listen(), (err: unknown) =>
      isMetricsError(err, 'SEAWALL_METRICS_SERVER_STATE'),
    );
  });

  it('close() racing listen() leaves nothing listening', async () => {
    const server = new MetricsServer(source, { port: 0 });
    const listening = server.listen();
    await server.close();
    const { port } = await listening;
    assert.equal(server.address, undefined);
    await assert.rejects(http(port, 'GET', '/metrics'), { code: 'ECONNREFUSED' });
  });

  it('rejects out-of-range options', () => {
    for (const options of [{ port: -1 }, { port: 65536 }, { port: 1.5 }, { maxConnections: 0 }]) {
      assert.throws(
        () => new MetricsServer(source, options),
        (err: unknown) => isMetricsError(err, 'SEAWALL_METRICS_INVALID_OPTION'),
      );
    }
  });
});
