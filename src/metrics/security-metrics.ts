// Metrics of the defences in docs/security.md, on a process's own registry beside its training
// metrics: what was refused and why, so an attack or a faulty device shows on the dashboard.
import { Counter, type Registry } from 'prom-client';

export interface SecurityMetrics {
  /** Peers refused for want of a valid credential (coordinator), by reason: TLS-level or token. */
  readonly authFailures: Counter<'reason'>;
  /** TCP connections closed before TLS because a pre-authentication cap was reached. */
  readonly connectionsRefused: Counter<'reason'>;
  /** Micro-batch results or all-reduce data refused (non-finite, miscounted), by what followed. */
  readonly refusedResults: Counter<'outcome'>;
  /** Workers revoked at their micro-batch deadline and kept out for a while, by reason. */
  readonly quarantines: Counter<'reason'>;
  /** All-reduce contributions refused on the shard owners' measures, by kind (contribution-check.ts). */
  readonly refusedContributions: Counter<'kind'>;
  /** Workers whose gradients in a committed step were far from the others'. */
  readonly gradientOutliers: Counter<'worker'>;
  /** All-reduce frames refused: failed authentication, conflicting copies, non-finite values. */
  readonly refusedFrames: Counter<'reason'>;
}

export function createSecurityMetrics(registry: Registry): SecurityMetrics {
  const registers = [registry];
  return {
    authFailures: new Counter({
      name: 'lora_mpt_auth_failures_total',
      help: "Peers refused for want of a valid credential: reason=token (no, wrong or another run's token; another run's certificate), handshake_timeout, no_client_certificate, bad_client_certificate, tls_handshake",
      labelNames: ['reason'],
      registers,
    }),
    connectionsRefused: new Counter({
      name: 'lora_mpt_connections_refused_total',
      help: 'TCP connections closed before TLS: reason=pending_handshakes (too many handshakes in progress), connections (too many open), accept_failed (out of file descriptors)',
      labelNames: ['reason'],
      registers,
    }),
    refusedResults: new Counter({
      name: 'lora_mpt_refused_results_total',
      help: 'Worker results refused (non-finite loss or gradient, wrong token count, bad all-reduce data); outcome=reset|dropped',
      labelNames: ['outcome'],
      registers,
    }),
    quarantines: new Counter({
      name: 'lora_mpt_quarantines_total',
      help: 'Workers kept out for a while before they may rejoin (doubling per offence); reason=hoarding (revoked at their micro-batch deadline), contribution (all-reduce contribution refused)',
      labelNames: ['reason'],
      registers,
    }),
    refusedContributions: new Counter({
      name: 'lora_mpt_refused_contributions_total',
      help: "Workers' all-reduce contributions refused on what the shard owners measured: kind=lying_norm (larger than the norms it reported), outlier (norm per token far above the others'), unmeasured (a shard owner withheld its measures)",
      labelNames: ['kind'],
      registers,
    }),
    gradientOutliers: new Counter({
      name: 'lora_mpt_gradient_outliers_total',
      help: "Committed steps in which a worker's gradient norm per token was far from the other workers'",
      labelNames: ['worker'],
      registers,
    }),
    refusedFrames: new Counter({
      name: 'lora_mpt_allreduce_frames_refused_total',
      help: 'All-reduce frames refused: reason=auth (MAC check failed), conflict (a second copy with other bytes), nonfinite',
      labelNames: ['reason'],
      registers,
    }),
  };
}
