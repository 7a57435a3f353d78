// Runs one generation at a time and chooses the next one fairly: the client served longest ago (or
// never) goes first, so a client that sends many requests cannot keep others waiting; each client's
// own requests run in the order they came. A request whose client went away while it waited leaves
// the queue without running; a full queue refuses new requests at once.

export class QueueFullError extends Error {
  override name = 'QueueFullError';
}

export class CancelledWhileWaitingError extends Error {
  override name = 'CancelledWhileWaitingError';
}

interface Waiting {
  readonly client: string;
  readonly seq: number;
  readonly start: () => void;
}

export class FairQueue {
  private readonly queue: Waiting[] = [];
  /** When each client last started a request (a counter, not a clock). */
  private readonly lastServed = new Map<string, number>();
  private busy = false;
  private seq = 0;
  private served = 0;

  constructor(readonly maxWaiting: number) {}

  /** Requests waiting (not counting the one running). */
  get waiting(): number {
    return this.queue.length;
  }

  get running(): boolean {
    return this.busy;
  }

  /** Runs `job` when its turn comes. Rejects with QueueFullError at once when `maxWaiting` requests
   * already wait, or with CancelledWhileWaitingError when `signal` aborts before the job starts. */
  run<T>(client: string, signal: AbortSignal, job: () => Promise<T>): Promise<T> {
    if (signal.aborted) return Promise.reject(new CancelledWhileWaitingError('the client went away'));
    if (this.busy && this.queue.length >= this.maxWaiting) {
      return Promise.reject(new QueueFullError(`${this.queue.length} requests are already waiting`));
    }
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        const i = this.queue.indexOf(entry);
        if (i < 0) return; // already started: the job itself watches the signal
        this.queue.splice(i, 1);
        reject(new CancelledWhileWaitingError('the client went away while the request waited'));
      };
      const entry: Waiting = {
        client,
        seq: this.seq++,
        start: () => {
          signal.removeEventListener('abort', onAbort);
          job()
            .then(resolve, reject)
            .finally(() => {
              this.busy = false;
              this.next();
            });
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.queue.push(entry);
      if (!this.busy) this.next();
    });
  }

  private next(): void {
    if (this.queue.length === 0) return;
    const turn = (w: Waiting) => this.lastServed.get(w.client) ?? -1;
    let pick = 0;
    for (let i = 1; i < this.queue.length; i++) {
      const a = this.queue[i] as Waiting;
      const b = this.queue[pick] as Waiting;
      if (turn(a) < turn(b) || (turn(a) === turn(b) && a.seq < b.seq)) pick = i;
    }
    const [entry] = this.queue.splice(pick, 1) as [Waiting];
    this.lastServed.set(entry.client, this.served++);
    if (this.lastServed.size > 10_000) this.forgetIdleClients();
    this.busy = true;
    entry.start();
  }

  /** Clients with nothing waiting lose their history (they then count as never served: fair enough). */
  private forgetIdleClients(): void {
    const active = new Set(this.queue.map((w) => w.client));
    for (const c of this.lastServed.keys()) if (!active.has(c)) this.lastServed.delete(c);
  }
}
