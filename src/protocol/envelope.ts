// A Session message is a oneof `body` ({ $case, value }); `envelope` wraps one value in it, typed by
// its case, for the builders of both ends (messages.ts, from-worker.ts).
import type { CoordinatorMessage, WorkerMessage } from './wire.ts';

type Message = CoordinatorMessage | WorkerMessage;
type Body<M extends Message> = NonNullable<M['body']>;
/** The value a message of case `C` carries. */
export type CaseValue<M extends Message, C extends Body<M>['$case']> = Extract<
  Body<M>,
  { $case: C }
>['value'];

/** A builder of messages of type M: `envelope<WorkerMessage>()('credit', { credits: 2 })`. */
export const envelope =
  <M extends Message>() =>
  <C extends Body<M>['$case']>($case: C, value: CaseValue<M, C>): M =>
    ({ body: { $case, value } }) as M;
