import { describe, it } from 'vitest';
import { referenceCases, replay } from './reference.js';

describe('ddpm scheduler against diffusers', () => {
  it.each(referenceCases('ddpm').map((c) => [c.name, c] as const))('matches diffusers: %s', (_name, reference) => {
    replay(reference);
  });
});
