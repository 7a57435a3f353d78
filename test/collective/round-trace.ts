// When a member's frames of each phase went out and came in, seen from outside the product: a
// wrapper around the member's NATS connection that notes the time of every publish and every
// delivered message by the phase token of its subject (subjects.ts: lora.<run>.s<step>.g<gen>.
// <phase>.<shard>.<from>). Used by the topology rig's diagnostics (bench/all-reduce-topology-
// timeline.ts) to find where a round's time goes; the product code is not touched.
import type { NatsConnection } from '@nats-io/transport-node';

/** Wall-clock milliseconds shared by every process on the machine (performance.now is per process). */
export const epochMs = (): number => performance.timeOrigin + performance.now();

/** First and last time (epoch ms) and bytes of one direction of one phase. */
export interface PhaseSpan {
  first: number;
  last: number;
  bytes: number;
  frames: number;
}

/** `out:<phase>` / `in:<phase>` -> span; node-local phases lose their node suffix (hrs-n2 -> hrs). */
export type RoundTrace = Record<string, PhaseSpan>;

const phaseOf = (subject: string): string => (subject.split('.')[4] ?? '?').replace(/-n\d+$/, '');

export class TracedConnection {
  trace: RoundTrace = {};

  constructor(private readonly nc: NatsConnection) {}

  private note(way: 'out' | 'in', subject: string, bytes: number): void {
    const key = `${way}:${phaseOf(subject)}`;
    const t = epochMs();
    const s = this.trace[key];
    if (s === undefined) this.trace[key] = { first: t, last: t, bytes, frames: 1 };
    else {
      s.last = t;
      s.bytes += bytes;
      s.frames++;
    }
  }

  /** The member's view of the connection: publish and subscribe noted, the rest passed through. */
  connection(): NatsConnection {
    const nc = this.nc;
    return new Proxy(nc, {
      get: (target, prop) => {
        if (prop === 'publish') {
          return (subject: string, data?: Uint8Array, opts?: unknown) => {
            this.note('out', subject, data?.length ?? 0);
            return target.publish(subject, data, opts as Parameters<NatsConnection['publish']>[2]);
          };
        }
        if (prop === 'subscribe') {
          return (subject: string, opts?: Parameters<NatsConnection['subscribe']>[1]) => {
            const callback = opts?.callback;
            if (!callback) return target.subscribe(subject, opts);
            return target.subscribe(subject, {
              ...opts,
              callback: (err, msg) => {
                if (msg) this.note('in', msg.subject, msg.data.length);
                callback(err, msg);
              },
            });
          };
        }
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }
}
