// The types of the Session stream that code outside src/protocol names: the generated proto
// (src/proto) re-exported from here, so only src/protocol and the two gRPC transports
// (coordinator/grpc-server.ts, worker/session.ts) import it (test/architecture/wire-seam.test.ts).
export {
  type ContributionNorm,
  type CoordinatorMessage,
  type FrameEvidenceReport,
  type Hello,
  type MicroBatch as WireMicroBatch,
  MicroBatchKind,
  type MicroBatchResult,
  type ReduceResult,
  type ReduceStart,
  type Revoked,
  type StateSync,
  type Welcome,
  type WorkerMessage,
} from '../proto/lora_mpt/v1/coordinator.ts';
