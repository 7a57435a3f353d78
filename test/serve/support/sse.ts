// Reading a Server-Sent Events response the way an OpenAI client does: `data: <json>` events until
// `data: [DONE]` (or the end of the body).

export interface SseRead {
  readonly events: unknown[];
  /** Whether the stream ended with OpenAI's `data: [DONE]`. */
  readonly done: boolean;
}

export async function readSse(
  res: Response,
  onEvent?: (e: unknown) => boolean | undefined,
): Promise<SseRead> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const events: unknown[] = [];
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return { events, done: false };
    buffer += decoder.decode(value, { stream: true });
    for (let cut = buffer.indexOf('\n\n'); cut >= 0; cut = buffer.indexOf('\n\n')) {
      const line = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (!line.startsWith('data: ')) throw new Error(`not an SSE data line: ${line}`);
      const data = line.slice(6);
      if (data === '[DONE]') {
        await reader.cancel();
        return { events, done: true };
      }
      const event = JSON.parse(data) as unknown;
      events.push(event);
      if (onEvent?.(event) === false) {
        await reader.cancel();
        return { events, done: false };
      }
    }
  }
}
