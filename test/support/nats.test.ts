import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type NatsServer, startNats } from './nats.ts';

describe('test NATS server', () => {
  let server: NatsServer;
  let nc: NatsConnection;

  before(async () => {
    server = await startNats({ maxPayload: 256 * 1024 });
    nc = await connect({ servers: server.url });
  });

  after(async () => {
    await nc?.close();
    await server?.stop();
  });

  it('delivers a published message to a subscriber', async () => {
    const sub = nc.subscribe('lora.test.roundtrip', { max: 1 });
    const payload = new Uint8Array([1, 2, 3, 250]);
    nc.publish('lora.test.roundtrip', payload);
    for await (const msg of sub) {
      assert.deepEqual(Array.from(msg.data), Array.from(payload));
    }
  });

  it('advertises the max_payload it was started with', () => {
    assert.equal(nc.info?.max_payload, 256 * 1024);
  });

  it('comes back on the same port after a restart', async () => {
    await server.restart();
    const nc2 = await connect({ servers: server.url });
    const reply = nc2.subscribe('lora.test.after-restart', { max: 1 });
    nc2.publish('lora.test.after-restart', new TextEncoder().encode('ok'));
    for await (const msg of reply) assert.equal(msg.string(), 'ok');
    await nc2.close();
  });
});

describe('test NATS server with monitoring', () => {
  it('serves /varz with the bytes it has moved', async () => {
    const server = await startNats({ prefer: 'process', httpPort: 0 });
    try {
      assert.ok(server.monitorUrl);
      const nc = await connect({ servers: server.url });
      nc.publish('lora.test.counted', new Uint8Array(1000));
      await nc.flush();
      const varz = (await (await fetch(`${server.monitorUrl}/varz`)).json()) as { in_bytes: number };
      assert.ok(varz.in_bytes >= 1000, `in_bytes ${varz.in_bytes}`);
      await nc.close();
    } finally {
      await server.stop();
    }
  });
});
