import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { FrameBuffers } from '../../src/collective/frame-buffers.ts';
import type { NatsServer } from '../support/nats.ts';
import { startNats } from '../support/nats.ts';
import { connectMembers } from './members.ts';

// Real nats-server: a sent frame is reused only after the server answered a flush sent after it.
describe('outgoing frame buffers', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  before(async () => {
    server = await startNats();
    [nc] = (await connectMembers(server.url, 1)) as [NatsConnection];
  });
  after(async () => {
    await nc?.close();
    await server?.stop();
  });

  it('reuses a published buffer in a later round once the server has read it, never before', async () => {
    const first = new FrameBuffers(nc);
    const frame = first.take(4096).fill(1);
    nc.publish('frames.test', frame);
    first.sent(frame);
    assert.notEqual(new FrameBuffers(nc).take(4096), frame, 'in flight: not handed out');
    first.release();
    assert.notEqual(new FrameBuffers(nc).take(4096), frame, 'released, not yet confirmed');
    await nc.flush(); // answered after the release's own flush
    const later = new FrameBuffers(nc);
    assert.equal(later.take(4096), frame);
    assert.notEqual(later.take(4096), frame, 'handed out once');
  });

  it('keeps buffers per connection', async () => {
    const [other] = (await connectMembers(server.url, 1)) as [NatsConnection];
    const mine = new FrameBuffers(nc);
    const frame = mine.take(2048);
    nc.publish('frames.test', frame);
    mine.sent(frame);
    mine.release();
    await nc.flush();
    assert.notEqual(new FrameBuffers(other).take(2048), frame);
    await other.close();
  });
});
