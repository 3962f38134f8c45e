import { describe, expect, it } from 'vitest';
import { modelSummaries } from '../../src/core/chat/commands/settings.js';
import { describeModelFolder } from '../../src/engine/model-description.js';
import { chatConfigFor } from '../../src/service/main.js';

const admins = { userIds: [], discordRoleIds: [] };

describe('what /settings says a model can draw', () => {
  it('the default model lists how many concepts it knows and a sample across its categories', async () => {
    const config = chatConfigFor(await describeModelFolder('models/default'), admins);
    const [summary] = modelSummaries(config);
    expect(config.models[0].knows?.count).toBe(552);
    expect(summary).toMatch(/^imagine-emoji-64 knows 552 things, for example: .+\.$/);
    expect(new Set(config.models[0].knows?.sample).size).toBe(12);
  });

  it('a folder without vocabulary.json (any Stable Diffusion export) adds no line', async () => {
    const config = chatConfigFor(await describeModelFolder('test/fixtures/models/tiny-sd'), admins);
    expect(config.models[0].knows).toBeUndefined();
    expect(modelSummaries(config)).toEqual([]);
  });
});
