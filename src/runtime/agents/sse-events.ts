import { createParser, type EventSourceMessage } from 'eventsource-parser';

/**
 * The server-sent events of a response body, in order, as they arrive. A
 * consumer that stops early (break, throw) cancels the body, which frees the
 * connection; one that reads to the end leaves it for the next request.
 */
export async function* sseEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<EventSourceMessage, void, undefined> {
  const pending: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => pending.push(event) });
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let ended = false;
  try {
    while (!ended) {
      const read = await reader.read();
      ended = read.done;
      if (read.done) {
        parser.feed(decoder.decode());
        // A last event without its closing blank line still counts.
        parser.reset({ consume: true });
      } else {
        parser.feed(decoder.decode(read.value, { stream: true }));
      }
      // Handed out one at a time, outside the parser's callback, so that a
      // consumer's throw never lands inside the parser.
      let event = pending.shift();
      while (event !== undefined) {
        yield event;
        event = pending.shift();
      }
    }
  } finally {
    if (!ended) reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
