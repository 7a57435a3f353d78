// The handshake rules of the coordinator <-> worker contract (proto/lora_mpt/v1): which Hello is
// welcome, and the refusal text a mismatched worker gets (it says what is wrong and what to do).
import type { Hello } from '../proto/lora_mpt/v1/coordinator.ts';

/** Bump when a proto change is not backward compatible. */
export const PROTOCOL_VERSION = 1;

/** Why this Hello is refused, or undefined when the worker may join. */
export function refusalReason(
  hello: Hello,
  runId: string,
  connected: ReadonlySet<string>,
): string | undefined {
  if (hello.protocolVersion !== PROTOCOL_VERSION) {
    return `protocol version ${hello.protocolVersion} does not match the coordinator's ${PROTOCOL_VERSION}; run the same lora-mpt version on workers and coordinator`;
  }
  if (hello.runId !== '' && hello.runId !== runId) {
    return `this coordinator runs "${runId}", not "${hello.runId}"; point the worker at its own run's coordinator`;
  }
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(hello.workerId)) {
    return `worker id "${hello.workerId}" is not 1-128 characters of letters, digits, ".", "_" or "-"`;
  }
  if (connected.has(hello.workerId)) {
    return `worker id "${hello.workerId}" is already connected; give every worker its own id (the pod name)`;
  }
  return undefined;
}
