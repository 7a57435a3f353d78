// SIGTERM (Kubernetes stopping a pod) and SIGINT (Ctrl-C) stop a run cleanly: the step driver ends
// at once, the steps committed since the last checkpoint are saved, and the process exits with
// 128 + the signal's number, so a Job controller knows the run did not finish.
import { constants } from 'node:os';

export function stopOnSignals(stop: (reason: string) => void): { exitCode(): number; dispose(): void } {
  let got: NodeJS.Signals | undefined;
  const handlers = (['SIGTERM', 'SIGINT'] as const).map((sig) => {
    const h = () => {
      got ??= sig;
      stop(`stopped by ${sig}`);
    };
    process.once(sig, h);
    return [sig, h] as const;
  });
  return {
    exitCode: () => (got ? 128 + constants.signals[got] : 1),
    dispose: () => {
      for (const [sig, h] of handlers) process.off(sig, h);
    },
  };
}
