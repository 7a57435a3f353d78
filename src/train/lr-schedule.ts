// The learning-rate schedule of the Hugging Face Trainer's default "linear" scheduler with warmup:
// rises linearly from 0 over `warmupSteps`, then falls linearly to 0 at `totalSteps`.

/** The learning rate used by the optimizer update that follows `completedSteps` earlier updates. */
export function linearWarmupLr(
  base: number,
  completedSteps: number,
  warmupSteps: number,
  totalSteps: number,
): number {
  if (completedSteps < warmupSteps) return (base * completedSteps) / Math.max(1, warmupSteps);
  return base * Math.max(0, (totalSteps - completedSteps) / Math.max(1, totalSteps - warmupSteps));
}
