// What one all-reduce round cost this participant, for whoever counts it (the worker's and the
// coordinator's Prometheus metrics): the algorithm that ran, the bytes it published and the bytes
// NATS delivered to it (frame headers included, as they cross the network), and its wall time from
// the call to the end, ready barrier included. Reported once per round, whether it completed or not.
import type { AllReduceAlgorithm } from './algorithms.ts';
import type { Round } from './round.ts';

export interface RoundReport {
  readonly algorithm: AllReduceAlgorithm;
  /** 'member' contributes (allReduceSum); 'observer' only receives the result (observeAllReduce). */
  readonly role: 'member' | 'observer';
  readonly members: number;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly seconds: number;
  /** false when the round ended with an error (timeout, disconnect, abort, cancel). */
  readonly completed: boolean;
}

export type RoundReporter = (r: RoundReport) => void;

/** Runs `round` and reports it to `onReport` (when given) however it ends. */
export async function runReported(
  round: Round,
  start: () => void,
  o: {
    readonly algorithm: AllReduceAlgorithm;
    readonly role: RoundReport['role'];
    readonly onReport: RoundReporter | undefined;
  },
): Promise<void> {
  const t0 = performance.now();
  let completed = false;
  try {
    await round.run(start);
    completed = true;
  } finally {
    o.onReport?.({
      algorithm: o.algorithm,
      role: o.role,
      members: round.spec.members.length,
      bytesSent: round.bytesSent,
      bytesReceived: round.bytesReceived,
      seconds: (performance.now() - t0) / 1000,
      completed,
    });
  }
}
