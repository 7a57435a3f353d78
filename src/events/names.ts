// Every event lora-mpt emits, by name: what tests, the demo and log pipelines may wait for. A new
// event is added here first, so a typo is a type error, not a test that waits forever.
export type EventName =
  // a run's life (coordinator and finetune)
  | 'run_started'
  | 'run_resumed'
  | 'run_already_finished'
  | 'run_finished'
  | 'run_stopped'
  | 'run_failed'
  | 'run_paused'
  | 'run_unpaused'
  | 'data_ready'
  | 'model_loading'
  | 'model_loaded'
  | 'backend_selected'
  | 'peak_flops'
  | 'stale_writes_removed'
  | 'warning'
  // steps
  | 'step_committed'
  | 'ledger_audit'
  | 'eval_done'
  | 'checkpoint_saved'
  | 'adapter_written'
  // membership and dealing (coordinator)
  | 'worker_joined'
  | 'worker_refused'
  | 'worker_synced'
  | 'worker_lost'
  | 'worker_left'
  | 'microbatches_dealt'
  | 'microbatch_completed'
  | 'microbatches_requeued'
  | 'microbatches_revoked'
  | 'result_ignored'
  | 'reduce_result_ignored'
  | 'frame_evidence'
  | 'reduce_started'
  | 'reduce_agreed'
  | 'reduce_aborted'
  | 'reduce_retry'
  | 'replica_mismatch'
  | 'state_resent'
  | 'rehearsal_summary'
  // defences (docs/security.md)
  | 'insecure_transport'
  | 'auth_refused'
  | 'tls_refused'
  | 'connection_refused'
  | 'warnings_suppressed'
  | 'open_files'
  | 'blame_ignored'
  | 'worker_quarantined'
  | 'contribution_refused'
  | 'result_refused'
  | 'gradient_outlier'
  | 'checkpoint_skipped'
  | 'allreduce_frame_refused'
  // a worker's side
  | 'worker_started'
  | 'session_joined'
  | 'session_refused'
  | 'reconnecting'
  | 'model_loading'
  | 'replica_synced'
  | 'fault_injected'
  // generate (the inference server and one-shot answers)
  | 'server_listening'
  | 'generation_started'
  | 'generation_finished'
  | 'request_refused'
  // probe (the chart's helm test): one event per check
  | 'probe_passed'
  | 'probe_failed'
  // fetch (staging a model into the Hugging Face cache)
  | 'fetch_started'
  | 'fetch_progress'
  | 'file_fetched'
  | 'fetch_finished'
  // one-shot commands' reports (merge, certs, gpu-check, demo, preprocess, eval)
  | 'model_merged'
  | 'companions_written'
  | 'credentials_written'
  | 'gpu_check'
  | 'demo'
  | 'rows_skipped'
  | 'eval_note';

/**
 * The fields of the events that listeners read (the coordinator's metrics, its status page): an
 * event named here must be emitted with them, so a listener can trust their types. Any event may
 * carry more fields; events not named here carry what they like.
 */
export interface TypedEventFields {
  /** A step committed (run-journal.ts); `step` = steps done. */
  readonly step_committed: {
    readonly step: number;
    readonly total_steps: number;
    readonly generation: number;
    readonly loss: number;
    readonly learning_rate: number;
    readonly grad_norm: number;
    readonly tokens_per_second: number;
    /** null until it can be estimated. */
    readonly eta_seconds: number | null;
    /** Wall time since the previous commit; null for the first commit of this process. */
    readonly step_seconds: number | null;
    /** Micro-batches each worker computed in the step. */
    readonly micro_batches: Readonly<Record<string, number>>;
  };
  readonly eval_done: { readonly step: number; readonly eval_loss: number; readonly eval_tokens: number };
  readonly checkpoint_saved: { readonly step: number; readonly path: string };
  /** Micro-batches of a step (or its evaluation) dealt to workers in one round of dealing. */
  readonly microbatches_dealt: {
    readonly step: number;
    readonly kind: 'train' | 'eval';
    readonly micro_batches: readonly number[];
  };
  /** An all-reduce round of a step began (ReduceStart sent to `members`). */
  readonly reduce_started: {
    readonly step: number;
    readonly generation: number;
    readonly members: readonly string[];
  };
  /** Every member's checksums agreed with the coordinator's: the step's commit begins. */
  readonly reduce_agreed: { readonly step: number; readonly generation: number };
  /** A worker's result was counted in its step (or evaluation): once per micro-batch. */
  readonly microbatch_completed: {
    readonly worker: string;
    readonly step: number;
    readonly micro_batch: number;
  };
  /** Micro-batches back in the queue: a lost worker's, or a diverged replica's share. */
  readonly microbatches_requeued: {
    readonly worker: string;
    readonly step: number;
    readonly micro_batches: readonly number[];
  };
  /** Micro-batches a straggler gave back before starting them: dealt again. */
  readonly microbatches_revoked: {
    readonly worker: string;
    readonly step: number;
    readonly micro_batches: readonly number[];
  };
  /** A worker's result or all-reduce data was refused; `dropped`: for the rest of the run. */
  readonly result_refused: {
    readonly worker: string;
    readonly step: number;
    readonly why: string;
    readonly offences: number;
    readonly dropped: boolean;
  };
  /** A worker held micro-batches past its deadline: revoked and kept out for `quarantine_ms`. */
  readonly worker_quarantined: {
    readonly worker: string;
    readonly step: number;
    readonly why: string;
    readonly offences: number;
    readonly quarantine_ms: number;
    readonly reason: 'hoarding' | 'contribution';
  };
  /** The shard owners' measures condemned a worker's all-reduce contribution (contribution-check.ts). */
  readonly contribution_refused: {
    readonly worker: string;
    readonly step: number;
    readonly generation: number;
    readonly kind: 'unmeasured' | 'lying_norm' | 'outlier';
    /** Its norm as the shard owners measured it (NaN when unmeasured). */
    readonly measured_norm: number;
    readonly why: string;
  };
  /** A worker's gradients in a committed step were far from the others' (reported, not refused). */
  readonly gradient_outlier: {
    readonly worker: string;
    readonly step: number;
    readonly per_token: number;
    readonly others_per_token: number;
  };
  /** A worker's reduced-gradient or replica-state checksum differed from the coordinator's. */
  readonly replica_mismatch: {
    readonly worker: string;
    readonly step: number;
    readonly generation: number;
    readonly what: 'gradient' | 'state';
  };
}
