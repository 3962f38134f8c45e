import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, generationLogger, REDACTED } from '../../src/service/logger.js';

function captureLines() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, stream };
}

describe('logger', () => {
  it('writes JSON lines with the level name, the role and the generation context', () => {
    const { lines, stream } = captureLines();
    const logger = createLogger({ logLevel: 'info', logRedactPrompts: false, role: 'worker' }, stream);
    generationLogger(logger, { generationId: 'gen-1', user: 'discord:42', workspace: 'guild-7' }).info({ steps: 20 }, 'job started');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'info',
      role: 'worker',
      generationId: 'gen-1',
      user: 'discord:42',
      workspace: 'guild-7',
      steps: 20,
      msg: 'job started',
    });
    expect(typeof lines[0].time).toBe('string');
  });

  it('redacts prompts wherever they sit when the config asks for it', () => {
    const { lines, stream } = captureLines();
    const logger = createLogger({ logLevel: 'info', logRedactPrompts: true, role: 'bot' }, stream);
    logger.info({ prompt: 'a red fox', request: { prompt: 'a red fox', negativePrompt: 'blurry', steps: 20 } }, 'accepted');
    logger.info({ job: { data: { prompt: 'a red fox' } } }, 'queued');
    expect(JSON.stringify(lines)).not.toContain('a red fox');
    expect(lines[0]).toMatchObject({ prompt: REDACTED, request: { prompt: REDACTED, negativePrompt: REDACTED, steps: 20 } });
    expect(lines[1]).toMatchObject({ job: { data: { prompt: REDACTED } } });
  });

  it('redacts prompts on the queue payload path, data.params.prompt, under a job too', () => {
    const { lines, stream } = captureLines();
    const logger = createLogger({ logLevel: 'info', logRedactPrompts: true, role: 'worker' }, stream);
    logger.info({ data: { params: { prompt: 'a red fox', negativePrompt: 'blurry', steps: 4 } } }, 'payload');
    logger.info({ job: { data: { params: { prompt: 'a red fox' } } } }, 'job');
    expect(JSON.stringify(lines)).not.toMatch(/a red fox|blurry/);
    expect(lines[0]).toMatchObject({ data: { params: { prompt: REDACTED, negativePrompt: REDACTED, steps: 4 } } });
  });

  it('keeps prompts when redaction is off', () => {
    const { lines, stream } = captureLines();
    createLogger({ logLevel: 'info', logRedactPrompts: false, role: 'bot' }, stream).info({ request: { prompt: 'a red fox' } }, 'accepted');
    expect(lines[0]).toMatchObject({ request: { prompt: 'a red fox' } });
  });

  it('never logs tokens, passwords or authorization headers', () => {
    const { lines, stream } = captureLines();
    createLogger({ logLevel: 'info', logRedactPrompts: false, role: 'bot' }, stream).info(
      { token: 'tok', request: { headers: { authorization: 'Bot tok' } }, admin: { password: 'pw-secret' } },
      'call',
    );
    expect(JSON.stringify(lines[0])).not.toMatch(/tok"|Bot tok|pw-secret/);
  });

  it('drops lines below the configured level', () => {
    const { lines, stream } = captureLines();
    const logger = createLogger({ logLevel: 'warn', logRedactPrompts: true, role: 'all' }, stream);
    logger.info('quiet');
    logger.warn('loud');
    expect(lines.map((line) => line.msg)).toEqual(['loud']);
  });
});
