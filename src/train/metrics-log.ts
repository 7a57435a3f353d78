// The JSON-lines metrics log beside the adapter (DESIGN.md §5): one object per line, appended and
// flushed as training goes, so a crash loses at most the line being written.
import { appendFile } from 'node:fs/promises';

export type LogRecord = Readonly<Record<string, string | number | boolean | null>>;

export class MetricsLog {
  constructor(readonly path: string) {}

  async append(record: LogRecord): Promise<void> {
    await appendFile(this.path, `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
  }
}
