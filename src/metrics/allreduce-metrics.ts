// All-reduce rounds as the process that took part saw them (a worker as a member, the coordinator as
// the observer): bytes published and delivered, and the wall time of each completed round, by the
// algorithm that ran. Fed by src/collective's round reports.
import { Counter, Histogram, type Registry } from 'prom-client';

export interface AllReduceRound {
  readonly algorithm: string;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly seconds: number;
  readonly completed: boolean;
}

export interface AllReduceMetrics {
  record(r: AllReduceRound): void;
}

export function allReduceMetrics(registry: Registry): AllReduceMetrics {
  const registers = [registry];
  const bytes = new Counter({
    name: 'lora_mpt_allreduce_bytes_total',
    help: 'Bytes of gradient all-reduce traffic this process published (direction=sent) or received (direction=received), frame headers included',
    labelNames: ['algorithm', 'direction'],
    registers,
  });
  const duration = new Histogram({
    name: 'lora_mpt_allreduce_duration_seconds',
    help: 'Wall time of one completed all-reduce round on this process, ready barrier included',
    labelNames: ['algorithm'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  });
  const failed = new Counter({
    name: 'lora_mpt_allreduce_failed_total',
    help: 'All-reduce rounds on this process that ended without a result (timeout, disconnect, abort)',
    labelNames: ['algorithm'],
    registers,
  });
  return {
    record(r) {
      bytes.inc({ algorithm: r.algorithm, direction: 'sent' }, r.bytesSent);
      bytes.inc({ algorithm: r.algorithm, direction: 'received' }, r.bytesReceived);
      if (r.completed) duration.observe({ algorithm: r.algorithm }, r.seconds);
      else failed.inc({ algorithm: r.algorithm });
    },
  };
}
