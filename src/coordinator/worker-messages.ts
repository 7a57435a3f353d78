// Hands one message from a worker (after its Hello) to the step driver. The gRPC server and the
// in-process worker of `finetune` both deliver through here, so both speak to the driver alike.
import type { WorkerMessage } from '../protocol/wire.ts';
import type { StepDriver } from './step-driver.ts';
import type { WorkerId } from './step-ledger.ts';

/** Returns a reason to end the stream when the message is not allowed now, else undefined. */
export function deliver(driver: StepDriver, id: WorkerId, msg: WorkerMessage): string | undefined {
  const body = msg.body;
  if (!body) return undefined;
  driver.members.touch(id);
  switch (body.$case) {
    case 'ready':
      driver.onReady(id, body.value.modelFingerprint, body.value.framePublicKey);
      return undefined;
    case 'credit':
      driver.onCredit(id, body.value.credits);
      return undefined;
    case 'result':
      driver.onResult(id, body.value);
      return undefined;
    case 'reduceResult':
      driver.onReduceResult(id, body.value);
      return undefined;
    case 'revoked':
      driver.onRevoked(id, body.value);
      return undefined;
    case 'heartbeat':
      return undefined;
    case 'evidence':
      // The frame behind the blame of the ReduceResult that follows: the blame policy checks it
      // (src/protocol/frame-evidence.ts, src/collective/evidence.ts checkFrameEvidence).
      driver.onFrameEvidence(id, body.value);
      return undefined;
    case 'hello':
      return 'Hello was already received on this stream';
  }
}
