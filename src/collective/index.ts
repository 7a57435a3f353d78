// Public surface of src/collective: the gradient all-reduce over NATS, its algorithms by name, and
// its typed errors.

export {
  ALGORITHM_NAMES,
  type AllReduceAlgorithm,
  algorithmSummaries,
  DEFAULT_ALGORITHM,
  isAllReduceAlgorithm,
  unknownAlgorithm,
} from './algorithms.ts';
export { type AllReduceOptions, allReduceSum } from './all-reduce.ts';
export type { ContributionNorm, ContributionsReporter } from './contributions.ts';
export {
  AllReduceCancelledError,
  AllReduceDisconnectedError,
  AllReduceError,
  AllReduceInputError,
  AllReducePeerAbortedError,
  AllReduceProtocolError,
  AllReduceTimeoutError,
  type MissingPart,
} from './errors.ts';
export { FRAME_OVERHEAD } from './frame.ts';
export { frameMacImplementation, prepareFrameKey } from './frame-mac.ts';
export {
  DEFAULT_GRADIENT_ENCODING,
  GRADIENT_ENCODINGS,
  type GradientEncoding,
  isGradientEncoding,
} from './gradient-encoding.ts';
export { InProcessCollective, type LocalRound } from './in-process.ts';
export { type ObserveOptions, observeAllReduce } from './observe.ts';
export type { RoundReport, RoundReporter } from './round-report.ts';
export type { RefusedFrame, RoundOptions } from './round-spec.ts';
