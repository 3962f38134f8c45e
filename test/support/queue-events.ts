import { subscribeEvents, type QueueEvent } from '../../src/queue/events.js';

/** Reads a model's event stream from the start (or after `fromId`) until `done` says enough (or fails after `timeoutMs`). */
export async function eventsUntil(
  where: { redisUrl: string; prefix: string; model?: string; fromId?: string },
  done: (events: QueueEvent[]) => boolean,
  timeoutMs = 45_000,
): Promise<QueueEvent[]> {
  const events: QueueEvent[] = [];
  const signal = AbortSignal.timeout(timeoutMs);
  for await (const event of subscribeEvents({ ...where, model: where.model ?? 'test-model', fromId: where.fromId ?? '0', signal, blockMs: 200 })) {
    events.push(event);
    if (done(events)) return events;
  }
  throw new Error(`gave up waiting for events; saw ${JSON.stringify(events.map((event) => event.type))}`);
}

export const terminalEventsOf = (events: QueueEvent[], generationId: string) =>
  events.filter((event) => event.generationId === generationId && event.type !== 'progress');
