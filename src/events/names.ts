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
  | 'model_loaded'
  | 'backend_selected'
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
  | 'microbatches_requeued'
  | 'microbatches_revoked'
  | 'result_ignored'
  | 'reduce_result_ignored'
  | 'reduce_aborted'
  | 'reduce_retry'
  | 'state_resent'
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
  | 'request_refused';
