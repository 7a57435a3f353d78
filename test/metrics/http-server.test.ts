import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { serveMetrics } from '../../src/metrics/http-server.ts';

// What the metrics are worth is tested against real runs (test/e2e/observability.test.ts); here, the
// server that carries them.
describe('process metrics endpoint', () => {
  it('answers /healthz with 200, or 503 and the reason', async () => {
    let reason: string | undefined;
    const server = await serveMetrics({
      registry: new Registry(),
      port: 0,
      host: '127.0.0.1',
      unhealthyReason: () => reason,
    });
    try {
      assert.equal((await fetch(`http://127.0.0.1:${server.port}/healthz`)).status, 200);
      reason = 'no heartbeat from the coordinator for 30 s';
      const res = await fetch(`http://127.0.0.1:${server.port}/healthz`);
      assert.equal(res.status, 503);
      assert.match(await res.text(), /no heartbeat/);
    } finally {
      await server.close();
    }
  });

  // A browser polling the status page keeps a connection busy; close() used to wait for it for ever
  // (a coordinator that had finished its run never exited). Here a client holds a request half sent.
  it('closes with a client still connected, mid-request', async () => {
    const server = await serveMetrics({ registry: new Registry(), port: 0, host: '127.0.0.1' });
    const client = connect(server.port, '127.0.0.1');
    await new Promise((resolve) => client.once('connect', resolve));
    const ended = new Promise((resolve) => client.once('close', resolve));
    client.write('GET /metrics HTTP/1.1\r\nHost: localhost\r\n');
    await new Promise((resolve) => setTimeout(resolve, 100)); // the server has read the half request
    let waiting: NodeJS.Timeout | undefined;
    const stuck = new Promise((_, reject) => {
      // A hang bound, not a speed limit: without the fix close() never returns.
      waiting = setTimeout(() => reject(new Error('close() still waits for the client after 10 s')), 10_000);
    });
    try {
      await Promise.race([server.close(), stuck]);
      await ended; // the server ended the connection
    } finally {
      clearTimeout(waiting);
      client.destroy(); // lets an unfixed server close, so a failure ends rather than hangs
    }
  });

  it('serves the pages a process adds, and names every path on a 404', async () => {
    let calls = 0;
    const server = await serveMetrics({
      registry: new Registry(),
      port: 0,
      host: '127.0.0.1',
      pages: {
        '/api/status': () => ({ contentType: 'application/json', body: JSON.stringify({ calls: ++calls }) }),
      },
    });
    try {
      const base = `http://127.0.0.1:${server.port}`;
      const res = await fetch(`${base}/api/status?x=1`);
      assert.equal(res.headers.get('content-type'), 'application/json');
      assert.deepEqual(await res.json(), { calls: 1 });
      assert.deepEqual(
        await (await fetch(`${base}/api/status`)).json(),
        { calls: 2 },
        'rendered per request',
      );
      const missing = await fetch(`${base}/nope`);
      assert.equal(missing.status, 404);
      assert.match(await missing.text(), /\/metrics, \/healthz, \/api\/status/);
    } finally {
      await server.close();
    }
  });
});
