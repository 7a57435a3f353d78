// Test helpers that watch or forge control traffic of a round, the way a foreign or stale
// participant would: they use the protocol's own subjects and frame encoder.
import type { NatsConnection } from '@nats-io/transport-node';
import { encodeFrame, FrameKind, runHash } from '../../src/collective/frame.ts';
import { ctlSubject, type RoundKey } from '../../src/collective/subjects.ts';

/** Resolves once participants `ids` (indices) announced ready in round `key`: they hold their subscriptions. */
export async function readiesOf(
  spy: NatsConnection,
  key: RoundKey,
  ids: readonly number[],
): Promise<() => Promise<void>> {
  const seen = new Set<number>();
  let done: () => void = () => {};
  const all = new Promise<void>((r) => (done = r));
  const sub = spy.subscribe(ctlSubject(key, '*'), {
    callback: (_e, msg) => {
      seen.add(Number(msg.subject.split('.').at(-1)));
      if (ids.every((id) => seen.has(id))) done();
    },
  });
  await spy.flush();
  return async () => {
    await all;
    sub.unsubscribe();
  };
}

/** A ready frame for `member` (index `from`) with header fields overridden. */
export function readyFrame(
  key: RoundKey,
  from: number,
  over: Partial<{ generation: number; runId: string }> = {},
) {
  return encodeFrame({
    kind: FrameKind.ready,
    runHash: runHash(over.runId ?? key.runId),
    step: key.step,
    generation: over.generation ?? key.generation,
    from,
    shard: 0,
    chunk: 0,
    chunkCount: 0,
    offset: 0,
    totalLength: 0,
  });
}

export const why = (r: PromiseSettledResult<unknown>) =>
  r.status === 'rejected' ? String(r.reason) : 'fulfilled';

export const reconnected = (nc: NatsConnection) =>
  (async () => {
    for await (const s of nc.status()) if (s.type === 'reconnect') return;
  })();
