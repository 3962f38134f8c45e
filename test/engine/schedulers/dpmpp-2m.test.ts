import { describe, it } from 'vitest';
import { referenceCases, replay } from './reference.js';

describe('dpmpp-2m scheduler against diffusers', () => {
  it.each(referenceCases('dpmpp-2m').map((c) => [c.name, c] as const))('matches diffusers: %s', (_name, reference) => {
    replay(reference);
  });
});

describe('dpmpp-2m-karras scheduler against diffusers', () => {
  it.each(referenceCases('dpmpp-2m-karras').map((c) => [c.name, c] as const))('matches diffusers: %s', (_name, reference) => {
    replay(reference);
  });
});
