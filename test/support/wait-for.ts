/** Polls a synchronous probe until it gives a value (see eventually in service-stack.ts for async probes). */
export function waitFor<T>(probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const startedAt = Date.now();
  return new Promise((resolve, reject) => {
    const poll = () => {
      const value = probe();
      if (value !== undefined && value !== null && value !== false) return resolve(value);
      if (Date.now() - startedAt > timeoutMs) return reject(new Error('waitFor: condition not met in time'));
      setTimeout(poll, 10);
    };
    poll();
  });
}
