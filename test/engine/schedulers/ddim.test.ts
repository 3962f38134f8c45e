import { describe, it } from 'vitest';
import { referenceCases, replay } from './reference.js';

describe('ddim scheduler against diffusers', () => {
  it.each(referenceCases('ddim').map((c) => [c.name, c] as const))('matches diffusers: %s', (_name, reference) => {
    replay(reference);
  });
});
