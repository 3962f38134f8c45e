import { describe, it } from 'vitest';
import { referenceCases, replay } from './reference.js';

describe('euler-a scheduler against diffusers', () => {
  it.each(referenceCases('euler-a').map((c) => [c.name, c] as const))('matches diffusers: %s', (_name, reference) => {
    replay(reference);
  });
});
