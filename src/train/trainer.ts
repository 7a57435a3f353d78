// Single-process training, as the Hugging Face Trainer ran alpaca-lora: per step, the gradient of
// the summed token losses over all micro-batches of the global batch, divided by the step's
// supervised tokens, clipped at norm 1.0, AdamW with linear warmup/decay; evaluation every
// eval_steps, checkpoints every save_steps (pruned to save_total_limit), best adapter kept at the
// end. The distributed path runs the same replica calls and must give the same adapter.
import type { MicroBatch } from '../data/micro-batch.ts';
import type { MicroBatchCompute } from '../worker/model-compute.ts';
import type { CheckpointKeeper } from './checkpoint-keeper.ts';
import { linearWarmupLr } from './lr-schedule.ts';
import type { MetricsLog } from './metrics-log.ts';
import type { Progress } from './progress.ts';
import { type AdapterReplica, finalizeGradient } from './replica.ts';
import type { RunData } from './run-data.ts';

export interface TrainerOptions {
  readonly compute: MicroBatchCompute;
  readonly replica: AdapterReplica;
  readonly data: RunData;
  readonly checkpoints: CheckpointKeeper;
  readonly learningRate: number;
  readonly warmupSteps: number;
  readonly maxGradNorm: number;
  readonly evalSteps: number;
  readonly progress: Progress;
  readonly metrics: MetricsLog;
}

export interface TrainResult {
  readonly steps: number;
  readonly firstLoss: number;
  readonly lastLoss: number;
  readonly bestEvalLoss: number | null;
  readonly bestCheckpoint: string | null;
  readonly seconds: number;
}

const tokensIn = (mbs: readonly MicroBatch[]) => mbs.reduce((n, m) => n + m.rows * m.seqLen, 0);

export async function evaluate(
  compute: MicroBatchCompute,
  batches: readonly MicroBatch[],
): Promise<{ loss: number; tokens: number }> {
  let lossSum = 0;
  let tokens = 0;
  for (const mb of batches) {
    const r = await compute.evaluate(mb);
    lossSum += r.lossSum;
    tokens += r.tokens;
  }
  return { loss: tokens > 0 ? lossSum / tokens : Number.NaN, tokens };
}

export async function train(o: TrainerOptions): Promise<TrainResult> {
  const { replica, compute, data, progress } = o;
  const plan = data.plan;
  const total = plan.totalSteps;
  const keeper = o.checkpoints;
  let firstLoss = Number.NaN;
  let lastLoss = Number.NaN;
  const started = Date.now();
  const startStep = replica.step;
  let tokensSeen = 0;
  compute.setAdapter(replica.state.params);

  for (let step = startStep; step < total; step++) {
    const t0 = Date.now();
    const mbs = plan.microBatchesForStep(step);
    const acc = new Float32Array(replica.layout.size);
    let lossSum = 0;
    let tokens = 0;
    for (const mb of mbs) {
      const r = await compute.train(mb);
      for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! + r.grad[i]!;
      lossSum += r.lossSum;
      tokens += r.tokens;
    }
    const final = finalizeGradient(acc, tokens, o.maxGradNorm);
    const lr = linearWarmupLr(o.learningRate, replica.step, o.warmupSteps, total);
    replica.apply(final.grad, lr);
    compute.setAdapter(replica.state.params);
    const done = step + 1;
    const loss = lossSum / tokens;
    if (step === startStep) firstLoss = loss;
    lastLoss = loss;
    tokensSeen += tokensIn(mbs);
    const elapsed = (Date.now() - started) / 1000;
    const entry = {
      step: done,
      loss,
      learning_rate: lr,
      grad_norm: final.norm,
      epoch: done / plan.stepsPerEpoch,
      supervised_tokens: tokens,
      step_seconds: (Date.now() - t0) / 1000,
    };
    keeper.history.push(entry);
    await o.metrics.append({ ...entry, tokens_per_second: tokensSeen / elapsed });
    progress.step({
      step: done,
      totalSteps: total,
      loss,
      learningRate: lr,
      tokensPerSecond: tokensSeen / elapsed,
      elapsedSeconds: elapsed,
    });

    if (data.evalBatches.length > 0 && (done % o.evalSteps === 0 || done === total)) {
      const ev = await evaluate(compute, data.evalBatches);
      keeper.recordEval(done, ev.loss, ev.tokens);
      await o.metrics.append({ step: done, eval_loss: ev.loss, eval_tokens: ev.tokens });
      progress.line(`step ${done}: eval loss ${ev.loss.toFixed(4)} over ${ev.tokens} tokens`);
    }
    const saved = await keeper.afterStep(done);
    if (saved) {
      progress.line(
        `saved ${saved.path}${saved.pruned.length > 0 ? ` (removed ${saved.pruned.length} older)` : ''}`,
      );
    }
  }
  progress.end();
  return {
    steps: total - startStep,
    firstLoss,
    lastLoss,
    bestEvalLoss: keeper.best?.loss ?? null,
    bestCheckpoint: keeper.best?.path ?? null,
    seconds: (Date.now() - started) / 1000,
  };
}
