// `finetune`'s worker: the same ReplicaWorker a `lora-mpt worker` runs, joined to the step driver in
// this process. Messages cross as objects on the microtask queue (no gRPC) and the all-reduce of its
// one member is in-process (no NATS), so one process trains by exactly the code a cluster runs.
import type { InProcessCollective } from '../collective/index.ts';
import type { WorkerLink } from '../coordinator/members.ts';
import type { StepDriver } from '../coordinator/step-driver.ts';
import { workerId } from '../coordinator/step-ledger.ts';
import { deliver } from '../coordinator/worker-messages.ts';
import type { Events } from '../events/events.ts';
import { readyMessage } from '../protocol/from-worker.ts';
import type { CoordinatorMessage, WorkerMessage } from '../protocol/wire.ts';
import type { ParamLayout } from '../train/param-layout.ts';
import type { RunConfig } from '../train/run-config.ts';
import type { MicroBatchCompute } from '../worker/model-compute.ts';
import { ReplicaWorker } from '../worker/replica-worker.ts';

export function attachInProcessWorker(
  driver: StepDriver,
  o: {
    readonly id: string;
    readonly run: RunConfig;
    readonly layout: ParamLayout;
    readonly compute: MicroBatchCompute;
    readonly modelFingerprint: string;
    readonly collective: InProcessCollective;
    readonly events: Events;
    /** Micro-batches queued at once, as `lora-mpt worker --max_in_flight`. */
    readonly maxInFlight?: number;
  },
): void {
  const id = workerId(o.id);
  const fail = (err: Error) => driver.abort(err);
  const toDriver = (msg: WorkerMessage) =>
    queueMicrotask(() => {
      const wrong = deliver(driver, id, msg);
      if (wrong !== undefined) fail(new Error(`in-process worker: ${wrong}`));
    });
  const worker = new ReplicaWorker({
    id,
    run: o.run,
    layout: o.layout,
    compute: o.compute,
    maxInFlight: o.maxInFlight ?? 2,
    send: toDriver,
    reduce: (r) => o.collective.allReduceSum({ ...r, self: id }),
    events: o.events,
    onFatal: fail,
  });
  const link: WorkerLink = {
    id,
    send: (msg: CoordinatorMessage) =>
      queueMicrotask(() => {
        try {
          worker.handle(msg);
        } catch (err) {
          fail(err as Error);
        }
      }),
    close: (why) => fail(new Error(`the step driver closed the in-process worker: ${why}`)),
    // One process has no second try: the same micro-batch computes the same values again.
    drop: (why) => fail(new Error(`the step driver reset the in-process worker: ${why}`)),
  };
  driver.join(link);
  toDriver(readyMessage(o.modelFingerprint));
}
