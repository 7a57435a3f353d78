// The handshake rules of the coordinator <-> worker contract (proto/lora_mpt/v1): which Hello is
// welcome, and the refusal a mismatched worker gets. A refusal says what is wrong and what to do, and
// whether waiting can fix it (`retryable`): the worker decides on that field, never on the text.
import type { Hello } from '../proto/lora_mpt/v1/coordinator.ts';

/** Bump when a proto change is not backward compatible. */
export const PROTOCOL_VERSION = 1;

export interface Refusal {
  readonly reason: string;
  /** The same worker may be welcome later (e.g. its previous stream has not been reaped yet). */
  readonly retryable: boolean;
}

/** Why this Hello is refused, or undefined when the worker may join. */
export function refusalOf(hello: Hello, runId: string, connected: ReadonlySet<string>): Refusal | undefined {
  const final = (reason: string): Refusal => ({ reason, retryable: false });
  if (hello.protocolVersion !== PROTOCOL_VERSION) {
    return final(
      `protocol version ${hello.protocolVersion} does not match the coordinator's ${PROTOCOL_VERSION}; run the same lora-mpt version on workers and coordinator`,
    );
  }
  if (hello.runId !== '' && hello.runId !== runId) {
    return final(
      `this coordinator runs "${runId}", not "${hello.runId}"; point the worker at its own run's coordinator`,
    );
  }
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(hello.workerId)) {
    return final(`worker id "${hello.workerId}" is not 1-128 characters of letters, digits, ".", "_" or "-"`);
  }
  if (connected.has(hello.workerId)) {
    return {
      reason: `worker id "${hello.workerId}" is already connected; give every worker its own id (the pod name)`,
      retryable: true,
    };
  }
  return undefined;
}
