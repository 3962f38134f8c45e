import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isImagineError } from '../../src/core/errors.js';
import { describeConfig, listenersOf, loadConfig } from '../../src/service/config.js';

function configError(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (isImagineError(error) && error.kind === 'invalid_input') return error.userMessage;
    throw error;
  }
  throw new Error('expected loadConfig to refuse the configuration');
}

describe('loadConfig', () => {
  it('starts the all-in-one role with nothing set, on embedded defaults', () => {
    const config = loadConfig({}, 'all');
    expect(config.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(config.database).toEqual({ kind: 'pglite', dir: join('data', 'pglite') });
    expect(config.imageStore).toEqual({ kind: 'local', dir: join('data', 'images') });
    expect(config.modelDir).toBe('models/default');
    expect(config.ortProviders).toEqual(['cpu']);
    expect(config.ortThreads).toBeUndefined();
    expect(config.previewIntervalMs).toBe(1500);
    expect(config.webPort).toBe(3000);
    expect(config.host, 'npm start listens on loopback only').toBe('127.0.0.1');
    expect(config.workerConcurrency).toBe(1);
    expect(config.admin).toBeUndefined();
    expect(config.discord).toBeUndefined();
    expect(config.logRedactPrompts).toBe(true);
  });

  it('reads every documented variable', () => {
    const config = loadConfig(
      {
        REDIS_URL: 'redis://:pw@redis:6379/2',
        DATABASE_URL: 'postgresql://imagine:pw@db:5432/imagine',
        MODEL_DIR: '/models/sd15',
        ORT_PROVIDERS: 'cuda, cpu',
        ORT_THREADS: '2',
        WORKER_CONCURRENCY: '3',
        PREVIEW_INTERVAL_MS: '0',
        HTTP_PORT: '8081',
        DISCORD_TOKEN: 'discord-token',
        DISCORD_APP_ID: '1234',
        SLACK_BOT_TOKEN: 'xoxb-1',
        SLACK_APP_TOKEN: 'xapp-1',
        ADMIN_USER: 'ops',
        ADMIN_PASSWORD: 'correct horse battery',
        LOG_LEVEL: 'debug',
        LOG_REDACT_PROMPTS: 'false',
        PROMPT_BLOCKLIST: 'gore, , spam ',
        RATE_LIMIT_USER_PER_MINUTE: '2',
        IMAGE_DIR: '/images',
      },
      'all',
    );
    expect(config.database).toEqual({ kind: 'postgres', url: 'postgresql://imagine:pw@db:5432/imagine' });
    expect(config.ortProviders).toEqual(['cuda', 'cpu']);
    expect(config.ortThreads).toBe(2);
    expect(config.workerConcurrency).toBe(3);
    expect(config.previewIntervalMs).toBe(0);
    expect(config.httpPort).toBe(8081);
    expect(config.discord).toEqual({ token: 'discord-token', appId: '1234', publicKey: undefined });
    expect(config.slack).toEqual({ botToken: 'xoxb-1', appToken: 'xapp-1', signingSecret: undefined });
    expect(config.admin).toEqual({ user: 'ops', password: 'correct horse battery' });
    expect(config.logLevel).toBe('debug');
    expect(config.logRedactPrompts).toBe(false);
    expect(config.promptBlocklist).toEqual(['gore', 'spam']);
    expect(config.rateLimits).toEqual({ userPerMinute: 2, workspacePerMinute: 60 });
    expect(config.imageStore).toEqual({ kind: 'local', dir: '/images' });
  });

  it('is generous per user for one person at the local web chat, and strict wherever several users come in', () => {
    expect(loadConfig({}, 'all')).toMatchObject({ rateLimits: { userPerMinute: 60 }, jobCaps: { perUser: 10 } });
    for (const [env, role] of [
      [{}, 'bot'],
      [{ DISCORD_TOKEN: 'discord-token', DISCORD_APP_ID: '1234' }, 'all'],
      [{ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_APP_TOKEN: 'xapp-1' }, 'all'],
    ] as const) {
      expect(loadConfig(env, role)).toMatchObject({ rateLimits: { userPerMinute: 6, workspacePerMinute: 60 }, jobCaps: { perUser: 3, perWorkspace: 20 } });
    }
    expect(loadConfig({ RATE_LIMIT_USER_PER_MINUTE: '4', MAX_JOBS_PER_USER: '2' }, 'all')).toMatchObject({ rateLimits: { userPerMinute: 4 }, jobCaps: { perUser: 2 } });
  });

  it('takes PORT for the web chat when WEB_PORT is not set, and WEB_PORT when both are', () => {
    expect(loadConfig({ PORT: '8080' }, 'all').webPort).toBe(8080);
    expect(loadConfig({ PORT: '8080', WEB_PORT: '3001' }, 'all').webPort).toBe(3001);
    expect(loadConfig({}, 'all').webPort).toBe(3000);
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', WORKER_CONCURRENCY: '', DISCORD_TOKEN: '' }, 'worker').database.kind).toBe('pglite');
  });

  it('names the variable when a value is malformed', () => {
    expect(configError(() => loadConfig({ REDIS_URL: 'http://redis:6379' }, 'worker'))).toMatch(
      /^Invalid configuration: REDIS_URL must be a URL starting with redis:\/\/ or rediss:\/\/ \(got "http:\/\/redis:6379"\)\.$/,
    );
    expect(configError(() => loadConfig({ WORKER_CONCURRENCY: '0' }, 'worker'))).toContain('WORKER_CONCURRENCY must be');
    expect(configError(() => loadConfig({ ORT_PROVIDERS: 'cuda,rocm' }, 'worker'))).toContain('ORT_PROVIDERS must list providers among');
    expect(configError(() => loadConfig({ HTTP_PORT: 'eighty' }, 'worker'))).toContain('HTTP_PORT must be a port number');
    expect(configError(() => loadConfig({ LOG_REDACT_PROMPTS: 'maybe' }, 'worker'))).toContain('LOG_REDACT_PROMPTS must be true or false');
  });

  it('passes the GPU device id to the cuda and tensorrt providers', () => {
    const config = loadConfig({ ORT_PROVIDERS: 'tensorrt,cuda', GPU_DEVICE_ID: '1' }, 'worker');
    expect(config.gpuProviderOptions).toEqual({ deviceId: 1 });
    expect(describeConfig(config).gpuDeviceId).toBe(1);
    expect(loadConfig({}, 'worker').gpuProviderOptions).toEqual({});
  });

  it('refuses CUDA and TensorRT settings that onnxruntime-node cannot pass, naming each', () => {
    const message = configError(() =>
      loadConfig({ ORT_PROVIDERS: 'tensorrt,cuda', CUDA_MEMORY_LIMIT_MB: '4096', CUDNN_CONV_ALGO_SEARCH: 'HEURISTIC', TENSORRT_ENGINE_CACHE_DIR: '/cache', TENSORRT_FP16: 'true' }, 'worker'),
    );
    expect(message).toContain('CUDA_MEMORY_LIMIT_MB cannot reach the CUDA provider: onnxruntime-node 1.30 passes only the device id to it, so gpu_mem_limit would be silently ignored');
    expect(message).toContain('CUDNN_CONV_ALGO_SEARCH cannot reach the CUDA provider');
    expect(message).toContain('TENSORRT_ENGINE_CACHE_DIR cannot reach the TensorRT provider');
    expect(message).toContain('TENSORRT_FP16 cannot reach the TensorRT provider');
  });

  it('refuses a GPU setting for a provider the worker does not use', () => {
    expect(configError(() => loadConfig({ ORT_PROVIDERS: 'webgpu', GPU_DEVICE_ID: '1' }, 'worker'))).toBe(
      'Invalid configuration: GPU_DEVICE_ID is for the cuda or tensorrt or dml provider, which is not among the providers in use (webgpu): add it to ORT_PROVIDERS or unset GPU_DEVICE_ID.',
    );
  });

  it('checks the form of the GPU settings', () => {
    const message = configError(() => loadConfig({ ORT_PROVIDERS: 'cuda', GPU_DEVICE_ID: '-1', CUDNN_CONV_ALGO_SEARCH: 'fast', TENSORRT_FP16: 'maybe', CUDA_MEMORY_LIMIT_MB: '1.5' }, 'worker'));
    expect(message).toContain('GPU_DEVICE_ID must be 0 or more (got "-1")');
    expect(message).toContain('CUDNN_CONV_ALGO_SEARCH must be one of exhaustive, heuristic, default (got "fast")');
    expect(message).toContain('TENSORRT_FP16 must be true or false (got "maybe")');
    expect(message).toContain('CUDA_MEMORY_LIMIT_MB must be a whole number of MiB (got "1.5")');
  });

  it('leaves GPU settings to the workers: the bot role loads no model', () => {
    expect(loadConfig({ CUDA_MEMORY_LIMIT_MB: '4096' }, 'bot').role).toBe('bot');
  });

  it('reports every bad variable in one error', () => {
    const message = configError(() => loadConfig({ ORT_THREADS: '1.5', PREVIEW_INTERVAL_MS: '-1', LOG_LEVEL: 'loud' }, 'worker'));
    expect(message).toContain('ORT_THREADS');
    expect(message).toContain('PREVIEW_INTERVAL_MS');
    expect(message).toContain('LOG_LEVEL');
  });

  it('never repeats a secret in its error', () => {
    const message = configError(() => loadConfig({ ADMIN_PASSWORD: 'hunter2', ADMIN_USER: 'ops' }, 'worker'));
    expect(message).toContain('ADMIN_PASSWORD must be at least 12 characters long (value hidden)');
    expect(message).not.toContain('hunter2');
    const urlMessage = configError(() => loadConfig({ DATABASE_URL: 'mysql://root:s3cret@db/imagine' }, 'worker'));
    expect(urlMessage).toContain('DATABASE_URL');
    expect(urlMessage).not.toContain('s3cret');
  });

  it('refuses half a set of chat credentials', () => {
    expect(configError(() => loadConfig({ DISCORD_TOKEN: 'token' }, 'all'))).toContain('DISCORD_APP_ID is required when DISCORD_TOKEN is set');
    expect(configError(() => loadConfig({ SLACK_BOT_TOKEN: 'xoxb' }, 'all'))).toContain('SLACK_APP_TOKEN or SLACK_SIGNING_SECRET is required');
    expect(configError(() => loadConfig({ ADMIN_USER: 'ops' }, 'all'))).toContain('ADMIN_PASSWORD is required when ADMIN_USER is set');
  });

  it('lets the bot role run with no chat platform (it serves the web chat)', () => {
    expect(loadConfig({}, 'bot')).toMatchObject({ discord: undefined, slack: undefined });
    expect(loadConfig({ SLACK_BOT_TOKEN: 'xoxb', SLACK_SIGNING_SECRET: 'sig' }, 'bot').slack?.signingSecret).toBe('sig');
  });

  it('takes chat admins only as platform:id, so an id cannot be claimed on another platform', () => {
    const ids = 'discord:123456789012345678, slack:U012AB3CD,web:web-0123456789abcdef0123456789abcdef';
    expect(loadConfig({ CHAT_ADMIN_USER_IDS: ids }, 'all').chatAdmins.userIds).toEqual([
      'discord:123456789012345678',
      'slack:U012AB3CD',
      'web:web-0123456789abcdef0123456789abcdef',
    ]);
    const message = configError(() => loadConfig({ CHAT_ADMIN_USER_IDS: 'discord:1,U012AB3CD' }, 'all'));
    expect(message).toContain('CHAT_ADMIN_USER_IDS must name each admin with its platform');
    expect(message).toContain('"U012AB3CD"');
  });

  it('takes the web chat admin token and session secret as secrets of a useful length', () => {
    const message = configError(() => loadConfig({ WEB_ADMIN_TOKEN: 'short', WEB_SESSION_SECRET: 'also-short' }, 'all'));
    expect(message).toContain('WEB_ADMIN_TOKEN must be at least 16 characters long (value hidden)');
    expect(message).toContain('WEB_SESSION_SECRET must be at least 32 characters long (value hidden)');
    expect(loadConfig({ WEB_ADMIN_TOKEN: 'a-long-enough-admin-token' }, 'all').web).toEqual({ sessionSecret: undefined, adminToken: 'a-long-enough-admin-token' });
  });

  it('refuses one port for both the health server and the web chat, except on a worker that has no web chat', () => {
    expect(configError(() => loadConfig({ HTTP_PORT: '3000' }, 'all'))).toContain('HTTP_PORT must differ from WEB_PORT (both are 3000)');
    expect(loadConfig({ HTTP_PORT: '3000' }, 'worker').httpPort).toBe(3000);
  });

  it('listens for Slack over HTTP on SLACK_PORT, which must differ from the other ports, and not at all in Socket Mode', () => {
    const slackHttp = { SLACK_BOT_TOKEN: 'xoxb-1', SLACK_SIGNING_SECRET: 'signing' };
    expect(listenersOf(loadConfig({ ...slackHttp, SLACK_PORT: '4000', HOST: '0.0.0.0' }, 'bot'))).toEqual([
      { name: 'http', variable: 'HTTP_PORT', port: 9090 },
      { name: 'web', variable: 'WEB_PORT', port: 3000 },
      { name: 'slack', variable: 'SLACK_PORT', port: 4000 },
    ]);
    expect(configError(() => loadConfig({ ...slackHttp, SLACK_PORT: '3000' }, 'bot'))).toContain('WEB_PORT must differ from SLACK_PORT (both are 3000)');
    const socketMode = loadConfig({ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_APP_TOKEN: 'xapp-1', SLACK_PORT: '3000' }, 'bot');
    expect(listenersOf(socketMode).map((listener) => listener.name)).toEqual(['http', 'web']);
  });

  it('takes Discord interactions over HTTP on DISCORD_INTERACTIONS_PORT only with a well-formed public key', () => {
    const discord = { DISCORD_TOKEN: 'discord-token', DISCORD_APP_ID: '1234' };
    expect(listenersOf(loadConfig(discord, 'bot')).map((listener) => listener.name), 'the gateway needs no port').toEqual(['http', 'web']);
    const http = loadConfig({ ...discord, DISCORD_PUBLIC_KEY: 'ab'.repeat(32), DISCORD_INTERACTIONS_PORT: '4002' }, 'bot');
    expect(listenersOf(http).at(-1)).toEqual({ name: 'discord', variable: 'DISCORD_INTERACTIONS_PORT', port: 4002 });
    expect(configError(() => loadConfig({ ...discord, DISCORD_PUBLIC_KEY: 'not-a-key' }, 'bot'))).toContain(
      "DISCORD_PUBLIC_KEY must be the application's public key from the developer portal (64 hex characters) (value hidden)",
    );
  });

  it('refuses an unknown role', () => {
    expect(configError(() => loadConfig({}, 'gpu' as never))).toContain('Unknown role "gpu"');
  });

  it('switches images to S3 only when the whole S3 set is given', () => {
    expect(configError(() => loadConfig({ S3_ENDPOINT: 'http://minio:9000' }, 'worker'))).toContain('S3_BUCKET is required when S3_ENDPOINT is set');
    const config = loadConfig(
      { S3_ENDPOINT: 'http://minio:9000', S3_BUCKET: 'images', S3_ACCESS_KEY_ID: 'key', S3_SECRET_ACCESS_KEY: 'secret-key' },
      'worker',
    );
    expect(config.imageStore).toEqual({
      kind: 's3',
      endpoint: 'http://minio:9000',
      bucket: 'images',
      region: 'us-east-1',
      accessKeyId: 'key',
      secretAccessKey: 'secret-key',
    });
  });

  describe('with CONFIG_FILE', () => {
    let dir: string | undefined;
    afterEach(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
      dir = undefined;
    });

    it('fills in from the file and lets the environment win', async () => {
      dir = await mkdtemp(join(tmpdir(), 'imagine-config-'));
      const file = join(dir, 'imagine.yaml');
      await writeFile(file, 'MODEL_DIR: /models/from-file\nWORKER_CONCURRENCY: 4\nORT_PROVIDERS: [cuda, cpu]\n');
      const config = loadConfig({ CONFIG_FILE: file, WORKER_CONCURRENCY: '2' }, 'worker');
      expect(config.modelDir).toBe('/models/from-file');
      expect(config.workerConcurrency).toBe(2);
      expect(config.ortProviders).toEqual(['cuda', 'cpu']);
    });

    it('names CONFIG_FILE when the file is missing', () => {
      expect(configError(() => loadConfig({ CONFIG_FILE: '/nonexistent/imagine.yaml' }, 'worker'))).toContain('CONFIG_FILE /nonexistent/imagine.yaml');
    });
  });
});

describe('describeConfig', () => {
  it('masks every secret and the passwords inside connection strings', () => {
    const secrets = ['discord-secret-token', 'xoxb-secret', 'xapp-secret', 'sign-secret', 'admin-password-long', 'redis-pw', 'pg-pw', 's3-secret', 'web-admin-token-0001', 'web-session-secret-000000000000000001'];
    const config = loadConfig(
      {
        REDIS_URL: 'redis://:redis-pw@redis:6379',
        DATABASE_URL: 'postgres://imagine:pg-pw@db/imagine',
        DISCORD_TOKEN: 'discord-secret-token',
        DISCORD_APP_ID: '42',
        SLACK_BOT_TOKEN: 'xoxb-secret',
        SLACK_APP_TOKEN: 'xapp-secret',
        SLACK_SIGNING_SECRET: 'sign-secret',
        ADMIN_USER: 'ops',
        ADMIN_PASSWORD: 'admin-password-long',
        S3_ENDPOINT: 'http://minio:9000',
        S3_BUCKET: 'images',
        S3_ACCESS_KEY_ID: 'key',
        S3_SECRET_ACCESS_KEY: 's3-secret',
        WEB_ADMIN_TOKEN: 'web-admin-token-0001',
        WEB_SESSION_SECRET: 'web-session-secret-000000000000000001',
      },
      'all',
    );
    const printed = JSON.stringify(describeConfig(config));
    for (const value of secrets) expect(printed).not.toContain(value);
    const description = describeConfig(config);
    expect(description.redisUrl).toBe('redis://:********@redis:6379');
    expect(description.database).toBe('postgres://imagine:********@db/imagine');
    expect(description.discordAppId).toBe('42');
    expect(description.adminUser).toBe('ops');
  });
});
