// Wiring of the collective's refused-frame callback to a process's metrics and events.
import type { RefusedFrame } from '../collective/index.ts';
import type { Events } from '../events/events.ts';
import type { SecurityMetrics } from '../metrics/security-metrics.ts';

/**
 * Counts each refused all-reduce frame, and says so once per round (a flood of forged frames must
 * not flood the log): an `allreduce_frame_refused` warning naming the reason and the claimed sender.
 */
export function refusedFrameReporter(
  m: SecurityMetrics,
  events: Events,
): (reason: RefusedFrame, claimedSender: string, round: { step: number; generation: number }) => void {
  let said = '';
  return (reason, sender, round) => {
    m.refusedFrames.inc({ reason });
    const key = `${round.step}:${round.generation}:${reason}`;
    if (said === key) return;
    said = key;
    events.warn(
      'allreduce_frame_refused',
      `refused an all-reduce frame of step ${round.step} generation ${round.generation} claiming to come from ${sender}: ${reason === 'auth' ? 'its MAC does not verify under the run key (forged)' : reason === 'conflict' ? 'a second copy of a chunk with other bytes' : 'non-finite values'}`,
      { step: round.step, generation: round.generation, reason, sender },
    );
  };
}
