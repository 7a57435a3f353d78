// Shared pieces of the fault tests (test/e2e/fault-*.test.ts): a short training whose steps have
// several micro-batches each, the fault-free reference adapter, the coordinator's per-step records
// from metrics.jsonl, and a stopwatch whose readings docs/faults.md reports (tests never assert on it).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { startLoraMpt } from './processes.ts';
import { runArgs, type TinyRun } from './tiny-run.ts';

/** 4 steps of 6 micro-batches (12 rows, 2 per micro-batch), a checkpoint after every step. */
export const faultTraining = (run: TinyRun, out: string): string[] =>
  runArgs(run, out, {
    batch_size: 12,
    micro_batch_size: 2,
    max_steps: 4,
    cutoff_len: 48,
    val_set_size: 6,
    eval_steps: 4,
    save_steps: 1,
    warmup_steps: 1,
    learning_rate: '1e-2',
    lora_dropout: 0.1,
    train_on_inputs: false,
    lora_target_modules: '[Wqkv,out_proj]',
  });

/** The fault-free adapter: single-process finetune (equal to any distributed split, e2e tests). */
export async function writeReference(run: TinyRun): Promise<string> {
  const out = join(run.dir, 'reference');
  const ft = startLoraMpt('finetune', ['finetune', ...faultTraining(run, out)]);
  assert.equal(await ft.exited(), 0, ft.output());
  return out;
}

/** One committed step as the coordinator wrote it to metrics.jsonl. */
export interface StepRecord {
  readonly step: number;
  readonly generation: number;
  readonly micro_batches_by_worker: string;
  readonly ledger_planned: number;
  readonly ledger_counted: number;
  readonly ledger_assigned: number;
  readonly ledger_requeued: string;
  readonly ledger_ignored: number;
  readonly replica_mismatches: number;
  readonly microbatches_requeued: number;
}

export function stepRecords(out: string): StepRecord[] {
  return readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => typeof r.ledger_planned === 'number') as unknown as StepRecord[];
}

/** Every step's ledger counted each planned micro-batch exactly once (the coordinator audits it). */
export function assertLedgersWhole(records: readonly StepRecord[], steps: number): void {
  assert.deepEqual(
    records.map((r) => r.step),
    Array.from({ length: steps }, (_, i) => i + 1),
    'one committed record per step, in order, none twice',
  );
  for (const r of records) assert.equal(r.ledger_counted, r.ledger_planned, `step ${r.step}`);
}

/** Micro-batches per worker over the whole run, from the commit records. */
export function splitByWorker(records: readonly StepRecord[]): Map<string, number> {
  const total = new Map<string, number>();
  for (const r of records) {
    for (const part of r.micro_batches_by_worker.split(' ').filter(Boolean)) {
      const [w, n] = part.split(':') as [string, string];
      total.set(w, (total.get(w) ?? 0) + Number(n));
    }
  }
  return total;
}

/** Reports how long recovery took (ms since `t0`) as a test diagnostic; never asserted on. */
export function recovery(t: TestContext, what: string, t0: number): number {
  const ms = Date.now() - t0;
  t.diagnostic(`recovery: ${what}: ${ms} ms`);
  return ms;
}
