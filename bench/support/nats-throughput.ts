// The nats-server's throughput as the cluster bench's yardstick: bytes per second one publisher gets
// to one subscriber through the server, in 64 KiB messages (the all-reduce's frame size order).
import { connect } from '@nats-io/transport-node';

export async function natsThroughput(url: string, totalBytes = 256 * 2 ** 20): Promise<number> {
  const size = 64 * 1024;
  const count = Math.ceil(totalBytes / size);
  const pub = await connect({ servers: url });
  const sub = await connect({ servers: url });
  try {
    const payload = new Uint8Array(size).fill(7);
    const subscription = sub.subscribe('bench.throughput', { max: count });
    await sub.flush();
    const started = performance.now();
    const received = (async () => {
      for await (const _ of subscription) {
        // counting to `max` is the subscription's job
      }
    })();
    for (let i = 0; i < count; i++) {
      pub.publish('bench.throughput', payload);
      if (i % 64 === 63) await pub.flush();
    }
    await pub.flush();
    await received;
    return (count * size) / ((performance.now() - started) / 1000);
  } finally {
    await pub.close();
    await sub.close();
  }
}
