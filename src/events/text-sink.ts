// The readable form of the event stream: each JSON event becomes `[label] msg` (warnings and errors
// say so). On a terminal, step events share one live line redrawn in place (step, loss, tokens/s,
// ETA); elsewhere a step line is printed every `stepEvery` steps and at the last one.
import { Writable } from 'node:stream';

interface ParsedEvent {
  readonly event?: string;
  readonly level?: string;
  readonly msg?: string;
  readonly step?: number;
  readonly total_steps?: number;
}

export class TextSink extends Writable {
  private live = false;
  private readonly tty: boolean;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly o: {
      readonly label: string;
      readonly stepEvery: number;
      /** false: never the live line, even on a terminal (several processes share it). */
      readonly live?: boolean;
    },
  ) {
    super();
    this.tty = out.isTTY === true && o.live !== false;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      let e: ParsedEvent;
      try {
        e = JSON.parse(line) as ParsedEvent;
      } catch {
        this.permanent(line);
        continue;
      }
      this.render(e);
    }
    done();
  }

  override _final(done: (err?: Error | null) => void): void {
    if (this.live) this.out.write('\n');
    this.live = false;
    done();
  }

  private render(e: ParsedEvent): void {
    const prefix = this.o.label ? `[${this.o.label}] ` : '';
    const level = e.level === 'warn' ? 'warning: ' : e.level === 'error' ? 'error: ' : '';
    const text = `${prefix}${level}${e.msg ?? e.event ?? ''}`;
    if (e.event !== 'step_committed') {
      this.permanent(text);
      return;
    }
    const step = e.step ?? 0;
    if (this.tty) {
      this.out.write(`\r\x1b[2K${text}`);
      this.live = true;
      if (step === e.total_steps) this.endLive();
    } else if (step % this.o.stepEvery === 0 || step === e.total_steps) {
      this.out.write(`${text}\n`);
    }
  }

  private permanent(text: string): void {
    if (this.live) this.out.write('\r\x1b[2K');
    this.out.write(`${text}\n`);
    this.live = false;
  }

  private endLive(): void {
    this.out.write('\n');
    this.live = false;
  }
}
