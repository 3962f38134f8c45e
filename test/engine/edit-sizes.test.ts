import { describe, expect, it } from 'vitest';
import { editSize, planPan, zoomedOutSize } from '../../src/engine/edit-sizes.js';

const listed = { name: 'tiny-sd', sizes: [[64, 64], [128, 128], [64, 128], [128, 64]] as [number, number][], sizeMultiple: 16, maxSidePx: 2048, vaeScaleFactor: 8 };
const oneSize = { ...listed, name: 'emoji-64', sizes: [[64, 64]] as [number, number][], vaeScaleFactor: 4 };
const free = { ...listed, name: 'sd15', sizes: null, sizeMultiple: 8, maxSidePx: 1024 };

describe('the size an edit works at', () => {
  it('is the picture’s own when the model makes it', () => {
    expect(editSize(listed, { width: 64, height: 128 })).toEqual({ width: 64, height: 128 });
  });

  it('brings a 4× upscale back to the largest listed size of its shape', () => {
    expect(editSize(listed, { width: 512, height: 512 })).toEqual({ width: 128, height: 128 });
    expect(editSize(oneSize, { width: 256, height: 256 })).toEqual({ width: 64, height: 64 });
  });

  it('refuses a shape the model does not make, listing the sizes it does', () => {
    expect(() => editSize(oneSize, { width: 96, height: 64 })).toThrow(/makes only 64x64; a 96x64 picture has another shape/);
  });

  it('scales a picture too large for a model without a size list down to its largest side, on its size step', () => {
    expect(editSize(free, { width: 2048, height: 1536 })).toEqual({ width: 1024, height: 768 });
    expect(editSize(free, { width: 500, height: 333 })).toEqual({ width: 504, height: 336 });
  });
});

describe('Zoom Out', () => {
  it('shrinks the picture by the factor', () => {
    expect(zoomedOutSize({ width: 64, height: 64 }, 2)).toEqual({ width: 32, height: 32 });
    expect(zoomedOutSize({ width: 512, height: 768 }, 1.5)).toEqual({ width: 341, height: 512 });
  });

  it.each([1, 1.05, 2.5, Number.NaN])('refuses a factor of %s, saying the range', (factor) => {
    expect(() => zoomedOutSize({ width: 64, height: 64 }, factor)).toThrow(expect.objectContaining({ kind: 'invalid_input', userMessage: expect.stringMatching(/from 1.1 to 2/) }));
  });
});

describe('Pan', () => {
  it('grows by half on that side for a model without a size list', () => {
    expect(planPan(free, { width: 512, height: 512 }, 'left')).toEqual({ width: 768, height: 512, mode: 'grow', newPx: 256 });
    expect(planPan(free, { width: 512, height: 512 }, 'down')).toEqual({ width: 512, height: 768, mode: 'grow', newPx: 256 });
  });

  it('stops at the model’s largest size', () => {
    expect(planPan(free, { width: 800, height: 512 }, 'right')).toEqual({ width: 1024, height: 512, mode: 'grow', newPx: 224 });
  });

  it('grows to the listed size of the same height nearest one and a half times the width', () => {
    expect(planPan(listed, { width: 64, height: 64 }, 'right')).toEqual({ width: 128, height: 64, mode: 'grow', newPx: 64 });
    expect(planPan(listed, { width: 64, height: 64 }, 'up')).toEqual({ width: 64, height: 128, mode: 'grow', newPx: 64 });
  });

  it('shifts the view by half for a model that makes one size', () => {
    expect(planPan(oneSize, { width: 64, height: 64 }, 'left')).toEqual({ width: 64, height: 64, mode: 'shift', newPx: 32 });
  });

  it('refuses to pan past the model’s largest size, saying what else to do', () => {
    expect(() => planPan(listed, { width: 128, height: 64 }, 'left')).toThrow(
      expect.objectContaining({ kind: 'invalid_input', userMessage: expect.stringMatching(/already 128 px wide, the most tiny-sd makes.*pan up or down, or zoom out/) }),
    );
    expect(() => planPan(free, { width: 1024, height: 512 }, 'right')).toThrow(/already 1024 px wide/);
  });
});
