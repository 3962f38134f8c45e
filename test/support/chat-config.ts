import type { ChatConfig } from '../../src/core/chat/chat-config.js';

/** Two made-up models (one 512 px, one 32 px) and admins on each platform, for tests of parsing and permissions. */
export const TEST_CHAT_CONFIG: ChatConfig = {
  models: [
    {
      name: 'emoji-tiny',
      baseWidth: 512,
      baseHeight: 512,
      sizeMultiple: 8,
      maxSide: 1024,
      defaultSteps: 30,
      maxSteps: 60,
      defaultGuidance: 7,
      defaultSampler: 'euler-a',
    },
    {
      name: 'pixel-32',
      baseWidth: 32,
      baseHeight: 32,
      sizeMultiple: 8,
      maxSide: 64,
      defaultSteps: 20,
      maxSteps: 50,
      defaultGuidance: 5,
      defaultSampler: 'ddim',
    },
  ],
  defaultModel: 'emoji-tiny',
  maxBatch: 4,
  defaultBatch: 4,
  admins: { userIds: ['discord:940000000000000009', 'slack:UADMIN0001'], discordRoleIds: ['930000000000000002'] },
};
