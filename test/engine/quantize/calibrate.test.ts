import { describe, expect, it } from 'vitest';
import { loadModelFolder } from '../../../src/engine/model-folder.js';
import { calibrateUnet } from '../../../src/engine/quantize/calibrate.js';

const TINY_SD = 'test/fixtures/models/tiny-sd';

describe('UNet calibration', () => {
  it('observes every UNet input of a model whose UNet runs in two lanes, as of one that runs in one', async () => {
    const [one, two] = await Promise.all([
      loadModelFolder(TINY_SD, { intraOpNumThreads: 2, unetLanes: 1 }),
      loadModelFolder(TINY_SD, { intraOpNumThreads: 2, unetLanes: 2 }),
    ]);
    try {
      // The prompt states differ between the unconditional and the conditional half of each guided UNet call.
      const inOneLane = await calibrateUnet(one, ['encoder_hidden_states'], 1, 2);
      const inTwoLanes = await calibrateUnet(two, ['encoder_hidden_states'], 1, 2);
      expect(inTwoLanes.ranges).toEqual(inOneLane.ranges);
      expect(inTwoLanes.run.unetCalls).toBe(inOneLane.run.unetCalls);
    } finally {
      await Promise.all([one.release(), two.release()]);
    }
  });
});
