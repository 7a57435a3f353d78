// tf.tidy for functions that return plain objects with tensor fields (some null): every tensor
// reachable from the result survives the scope, every other tensor made inside it is disposed.
import * as tf from '@tensorflow/tfjs-core';

export function tidyResult<T>(fn: () => T): T {
  // tf.tidy walks objects and arrays of the result and skips nulls; only its typing is narrower.
  return tf.tidy(fn as unknown as () => tf.TensorContainer) as unknown as T;
}
