// Follows one NATS connection's status for every round that uses it: a round in flight must fail
// fast on a disconnect (the server drops messages sent meanwhile), and a new round waits for the
// reconnect. One status iterator per connection, shared, ends when the connection closes.
import type { NatsConnection } from '@nats-io/transport-node';

export type ConnectionEvent = 'disconnect' | 'reconnect' | 'close';

interface Watch {
  connected: boolean;
  readonly listeners: Set<(e: ConnectionEvent) => void>;
}

const watches = new WeakMap<NatsConnection, Watch>();

function watch(nc: NatsConnection): Watch {
  const w = watches.get(nc);
  if (w) return w;
  // Seen for the first time: a closed connection is down; an open one is taken as connected
  // (the client exposes no "reconnecting" flag, only the event stream from here on).
  const state: Watch = { connected: !nc.isClosed(), listeners: new Set() };
  watches.set(nc, state);
  void (async () => {
    for await (const s of nc.status()) {
      const e: ConnectionEvent | undefined =
        s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'close' ? s.type : undefined;
      if (!e) continue;
      state.connected = e === 'reconnect';
      for (const l of [...state.listeners]) l(e);
    }
  })();
  return state;
}

/** Calls `listener` on each disconnect, reconnect and close of `nc`; returns the unsubscribe. */
export function onConnectionEvent(nc: NatsConnection, listener: (e: ConnectionEvent) => void): () => void {
  const w = watch(nc);
  w.listeners.add(listener);
  return () => w.listeners.delete(listener);
}

export function isConnected(nc: NatsConnection): boolean {
  return watch(nc).connected && !nc.isClosed();
}
