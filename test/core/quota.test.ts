import { describe, expect, it } from 'vitest';
import { GenerationRequest } from '../../src/core/generation.js';
import {
  checkRequestAgainstPolicy,
  effectivePolicy,
  generationCost,
  quotaExceeded,
  quotaPeriodWindow,
  type QuotaPolicy,
} from '../../src/core/quota.js';
import { imagineRequest } from '../support/generation-requests.js';

const DEFAULTS: QuotaPolicy = {
  unitsPerPeriod: 1000,
  period: 'day',
  maxPixels: 1024 * 1024,
  maxSteps: 50,
  maxBatch: 4,
  allowedModels: [],
  fastAllowed: true,
  relaxAllowed: true,
};

const request = (overrides: Omit<Parameters<typeof imagineRequest>[0] & {}, 'params'> & { params?: Partial<GenerationRequest['params']> } = {}) => {
  const base = imagineRequest();
  return GenerationRequest.parse({ ...base, ...overrides, params: { ...base.params, ...overrides.params } });
};

describe('generationCost', () => {
  it('charges one unit per 512×512 image step', () => {
    expect(generationCost(request({ params: { width: 512, height: 512, steps: 20, batch: 1 } }))).toBe(20);
    expect(generationCost(request({ params: { width: 1024, height: 1024, steps: 30, batch: 4 } }))).toBe(480);
  });

  it('rounds a small image up to a whole unit', () => {
    expect(generationCost(request({ params: { width: 64, height: 64, steps: 4, batch: 1 } }))).toBe(1);
  });

  it('charges image-to-image and variations only for the steps their strength runs', () => {
    const params = { width: 512, height: 512, steps: 30, batch: 1, strength: 0.5 };
    expect(generationCost(request({ kind: 'img2img', params }))).toBe(15);
    expect(generationCost(request({ kind: 'vary-subtle', params }))).toBe(15);
    expect(generationCost(request({ kind: 'reroll', params }))).toBe(30);
  });

  it('charges an upscale by the pixels of its 4× output', () => {
    expect(generationCost(request({ kind: 'upscale', params: { width: 512, height: 512, steps: 30, batch: 1 } }))).toBe(16);
  });

  it('charges a Vary of an upscale as the variations plus each upscale pass of each picture', () => {
    const params = { width: 256, height: 256, steps: 32, batch: 2, strength: 0.5 };
    // 16 steps of two 256×256 pictures (8 units), then 4× to 1024×1024 (4 units each) and 4× again to 4096×4096 (64 each).
    expect(generationCost(request({ kind: 'vary-subtle', params: { ...params, upscalePasses: 2 } }))).toBe(8 + 2 * 4 + 2 * 64);
    expect(generationCost(request({ kind: 'vary-subtle', params }))).toBe(8);
  });
});

describe('effectivePolicy', () => {
  it('lets a user override win over the workspace policy, field by field, and inherits what both leave empty', () => {
    const policy = effectivePolicy(
      DEFAULTS,
      { unitsPerPeriod: 100, maxSteps: 30, allowedModels: ['tiny-sd'], fastAllowed: false },
      { unitsPerPeriod: 500, maxSteps: null, allowedModels: [] },
    );
    expect(policy).toEqual({ ...DEFAULTS, unitsPerPeriod: 500, maxSteps: 30, allowedModels: ['tiny-sd'], fastAllowed: false });
  });
});

describe('checkRequestAgainstPolicy', () => {
  it('accepts a request within every limit', () => {
    expect(() => checkRequestAgainstPolicy(request(), DEFAULTS)).not.toThrow();
  });

  it.each([
    ['an image larger than the pixel limit', { params: { width: 2048, height: 1024 } }, '2048×1024 is larger than this server allows (at most 1048576 pixels, e.g. 1024×1024).'],
    ['more steps than allowed', { params: { steps: 51 } }, '51 steps is more than this server allows (at most 50).'],
    ['more images than allowed', { params: { batch: 4 } }, '4 images at once is more than this server allows (at most 2).'],
    ['a model outside the allowed list', { params: { model: 'big-model' } }, 'The model big-model is not available to you here; try tiny-sd, test-model.'],
    ['relax mode where only fast is allowed', { mode: 'relax' as const }, 'relax mode is not available to you here; use fast mode.'],
  ])('refuses %s with a forbidden error that says the limit', (_name, overrides, message) => {
    const policy = { ...DEFAULTS, maxBatch: 2, allowedModels: ['tiny-sd', 'test-model'], relaxAllowed: false };
    const refusal = (() => {
      try {
        checkRequestAgainstPolicy(request(overrides), policy);
      } catch (error) {
        return error;
      }
    })();
    expect(refusal).toMatchObject({ kind: 'forbidden', userMessage: message });
  });
});

describe('quotaPeriodWindow', () => {
  const now = new Date('2026-11-25T18:30:00Z'); // a Wednesday
  it('starts days at UTC midnight, weeks on Monday and months on the 1st', () => {
    expect(quotaPeriodWindow('day', now)).toEqual({ start: new Date('2026-11-25T00:00:00Z'), end: new Date('2026-11-26T00:00:00Z') });
    expect(quotaPeriodWindow('week', now)).toEqual({ start: new Date('2026-11-23T00:00:00Z'), end: new Date('2026-11-30T00:00:00Z') });
    expect(quotaPeriodWindow('month', now)).toEqual({ start: new Date('2026-11-01T00:00:00Z'), end: new Date('2026-12-01T00:00:00Z') });
  });

  it('puts a Sunday in the week that began the Monday before', () => {
    expect(quotaPeriodWindow('week', new Date('2026-11-29T23:59:00Z')).start).toEqual(new Date('2026-11-23T00:00:00Z'));
  });
});

describe('quotaExceeded', () => {
  it('tells the user what the request costs, what is left and when it resets', () => {
    const error = quotaExceeded({
      costUnits: 40,
      remainingUnits: 12,
      resetsAt: new Date('2026-11-24T00:00:00Z'),
      now: new Date('2026-11-23T23:15:00Z'),
    });
    expect(error.kind).toBe('quota_exceeded');
    expect(error.userMessage).toBe('This needs 40 units and you have 12 left; your quota resets in 45 minutes (2026-11-24 00:00 UTC).');
  });
});
