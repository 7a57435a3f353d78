// The scoring half of a beam-search step, on the device: log-softmax of every running beam's logits
// plus that beam's summed score, and the k best continuations over all beams, as transformers does
// it (log_softmax, + beam_scores, topk over num_beams·V). Only the k winners come back to the host,
// not num_beams·V log-probabilities (on tensorflow that host work was a fifth of a 4-beam step).
import * as tf from '@tensorflow/tfjs-core';

/** The k best continuations, best first: flat index beam·V + token, and the float32 score. */
export interface BeamCandidates {
  readonly flat: Int32Array;
  readonly scores: Float32Array;
  /** V, to turn a flat index back into (beam, token). */
  readonly vocab: number;
}

/**
 * `logits` [rows, V] (disposed here) scored against `offsets` (one summed score per beam). With
 * rows = 1 and more offsets, the one row stands for every beam (the prompt, the same in each).
 * Ties go to the lower flat index, as torch.topk and a stable descending sort give them.
 */
export async function beamCandidates(
  logits: tf.Tensor2D,
  offsets: Float32Array,
  k: number,
): Promise<BeamCandidates> {
  const [rows, vocab] = logits.shape;
  const beams = offsets.length;
  if (rows !== beams && rows !== 1) {
    logits.dispose();
    throw new Error(`beamCandidates: ${rows} logit rows for ${beams} beams`);
  }
  const { values, indices } = tf.tidy(() => {
    const logProbs = tf.logSoftmax(logits);
    const perBeam = rows === beams ? logProbs : tf.tile(logProbs, [beams, 1]);
    const scored = tf.add(perBeam, tf.tensor2d(offsets, [beams, 1]));
    return tf.topk(tf.reshape(scored, [1, beams * vocab]), Math.min(k, beams * vocab), true);
  });
  logits.dispose();
  try {
    const [scores, flat] = await Promise.all([values.data(), indices.data()]);
    return { flat: Int32Array.from(flat), scores: Float32Array.from(scores), vocab };
  } finally {
    tf.dispose([values, indices]);
  }
}
