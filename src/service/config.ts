import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ImagineError } from '../core/errors.js';
import { CUDNN_CONV_ALGO_SEARCHES, providerOptionProblems, type GpuProviderOptions } from '../engine/provider-options.js';

/**
 * One process kind per deployment unit, all from this code base: `all` is what `npm start` runs on one machine
 * (chat adapters, the local web chat and one worker); `bot` loads no model; `worker` runs only the engine.
 */
export const ROLES = ['all', 'bot', 'worker'] as const;
export type Role = (typeof ROLES)[number];

export const ORT_PROVIDERS = ['cpu', 'cuda', 'tensorrt', 'coreml', 'dml', 'webgpu'] as const;
export type OrtProvider = (typeof ORT_PROVIDERS)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Variables whose values are never printed: not by describeConfig, not in an error message. */
export const SECRET_VARIABLES = [
  'DISCORD_TOKEN',
  'DISCORD_PUBLIC_KEY',
  'SLACK_BOT_TOKEN',
  'SLACK_APP_TOKEN',
  'SLACK_SIGNING_SECRET',
  'ADMIN_PASSWORD',
  'S3_SECRET_ACCESS_KEY',
  'WEB_SESSION_SECRET',
  'WEB_ADMIN_TOKEN',
] as const;

/** Connection strings may carry a password in their user-info part; that part alone is masked. */
const URLS_WITH_CREDENTIALS = ['REDIS_URL', 'DATABASE_URL'] as const;

const MASK = '********';

// An empty variable (`FOO=` in a .env file or a compose `environment:` entry) means "not set", not "the empty string".
const optionalText = () => z.preprocess((value) => (value === '' ? undefined : value), z.string().optional());

const withDefault = <T extends z.ZodType>(schema: T, fallback: unknown) =>
  z.preprocess((value) => (value === undefined || value === '' ? fallback : value), schema);

const port = (fallback: number) =>
  withDefault(z.coerce.number({ error: 'must be a port number' }).int('must be a whole number').min(0).max(65_535), fallback);

const positiveInt = (fallback: number, what: string) =>
  withDefault(z.coerce.number({ error: `must be ${what}` }).int(`must be ${what}`).positive(`must be ${what}`), fallback);

/** Unset stays undefined: the default depends on who the service is for (see perUserDefaults). */
const optionalPositiveInt = (what: string) =>
  withDefault(z.coerce.number({ error: `must be ${what}` }).int(`must be ${what}`).positive(`must be ${what}`).optional(), undefined);

/**
 * Per-user limits when the variables are unset. The all-in-one role with no Discord or Slack token serves one person
 * at the local web chat, who clicks U1–U4 and V1–V4 in a burst: the multi-user limits would stop them within a minute.
 * Anything that faces several users keeps the strict ones. (docs/DEPLOY.md)
 */
export const PER_USER_DEFAULTS = {
  local: { commandsPerMinute: 60, jobsAtOnce: 10 },
  shared: { commandsPerMinute: 6, jobsAtOnce: 3 },
} as const;

const flag = (fallback: boolean) => withDefault(z.stringbool({ error: 'must be true or false' }), String(fallback));

const commaList = z.preprocess(
  (value) => (typeof value === 'string' ? value.split(',').map((item) => item.trim()).filter((item) => item !== '') : value),
  z.array(z.string()),
);

const urlWithProtocols = (protocols: string[]) =>
  z.string().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    { error: `must be a URL starting with ${protocols.map((protocol) => `${protocol}//`).join(' or ')}` },
  );

/** The environment as the operator writes it: upper-case names, everything a string. Unknown variables are ignored. */
const ConfigEnv = z.object({
  REDIS_URL: withDefault(urlWithProtocols(['redis:', 'rediss:']), 'redis://127.0.0.1:6379'),
  QUEUE_PREFIX: withDefault(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'may hold only letters, digits, "_", "." and "-"'), 'imagine'),
  DATABASE_URL: z.preprocess((value) => (value === '' ? undefined : value), urlWithProtocols(['postgres:', 'postgresql:']).optional()),
  DATA_DIR: withDefault(z.string(), './data'),
  IMAGE_DIR: optionalText(),
  MODEL_DIR: withDefault(z.string(), 'models/default'),
  ORT_PROVIDERS: withDefault(
    z.preprocess(
      (value) => (typeof value === 'string' ? value.split(',').map((item) => item.trim().toLowerCase()).filter(Boolean) : value),
      z
        .array(z.enum(ORT_PROVIDERS, { error: `must list providers among ${ORT_PROVIDERS.join(', ')}` }))
        .min(1, 'must name at least one provider'),
    ),
    'cpu',
  ),
  ORT_THREADS: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.coerce.number({ error: 'must be a whole number of threads' }).int('must be a whole number of threads').positive('must be at least 1').optional(),
  ),
  GPU_DEVICE_ID: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.coerce.number({ error: 'must be a GPU number (0, 1, …)' }).int('must be a whole GPU number').min(0, 'must be 0 or more').optional(),
  ),
  CUDA_MEMORY_LIMIT_MB: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.coerce.number({ error: 'must be a whole number of MiB' }).int('must be a whole number of MiB').positive('must be at least 1').optional(),
  ),
  CUDNN_CONV_ALGO_SEARCH: z.preprocess(
    (value) => (value === '' ? undefined : typeof value === 'string' ? value.toLowerCase() : value),
    z.enum(CUDNN_CONV_ALGO_SEARCHES, { error: `must be one of ${CUDNN_CONV_ALGO_SEARCHES.join(', ')}` }).optional(),
  ),
  TENSORRT_ENGINE_CACHE_DIR: optionalText(),
  TENSORRT_FP16: z.preprocess((value) => (value === '' ? undefined : value), z.stringbool({ error: 'must be true or false' }).optional()),
  WORKER_CONCURRENCY: positiveInt(1, 'a whole number of jobs, at least 1'),
  PREVIEW_INTERVAL_MS: withDefault(z.coerce.number({ error: 'must be milliseconds' }).int('must be whole milliseconds').min(0), 1500),
  /** Where every server of the process listens: loopback for `npm start`, `0.0.0.0` in a container (the images set it). */
  HOST: withDefault(z.string().regex(/^[0-9A-Za-z.:-]+$/, 'must be an IP address or host name, e.g. 127.0.0.1 or 0.0.0.0'), '127.0.0.1'),
  HTTP_PORT: port(9090),
  WEB_PORT: port(3000),
  /** Slack's Events API over HTTP (SLACK_SIGNING_SECRET without SLACK_APP_TOKEN). */
  SLACK_PORT: port(3001),
  DISCORD_TOKEN: optionalText(),
  DISCORD_APP_ID: optionalText(),
  DISCORD_PUBLIC_KEY: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.string().regex(/^[0-9a-fA-F]{64}$/, "must be the application's public key from the developer portal (64 hex characters)").optional(),
  ),
  /** Discord's interactions endpoint (with DISCORD_PUBLIC_KEY), instead of the gateway. */
  DISCORD_INTERACTIONS_PORT: port(3002),
  SLACK_BOT_TOKEN: optionalText(),
  SLACK_APP_TOKEN: optionalText(),
  SLACK_SIGNING_SECRET: optionalText(),
  ADMIN_USER: optionalText(),
  ADMIN_PASSWORD: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.string().min(12, 'must be at least 12 characters long').optional(),
  ),
  LOG_LEVEL: withDefault(z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }), 'info'),
  LOG_REDACT_PROMPTS: flag(true),
  PROMPT_BLOCKLIST: withDefault(commaList, ''),
  QUOTA_UNITS_PER_PERIOD: withDefault(z.union([z.literal('unlimited'), z.coerce.number({ error: 'must be a number of units or "unlimited"' }).positive('must be more than 0')]), 100),
  QUOTA_PERIOD: withDefault(z.enum(['day', 'week', 'month'], { error: 'must be day, week or month' }), 'day'),
  MAX_JOBS_PER_USER: optionalPositiveInt('a whole number of jobs, at least 1'),
  MAX_JOBS_PER_WORKSPACE: positiveInt(20, 'a whole number of jobs, at least 1'),
  WORKER_SHUTDOWN_DEADLINE_MS: withDefault(z.coerce.number({ error: 'must be milliseconds' }).int('must be whole milliseconds').min(0), 240_000),
  CHAT_ADMIN_USER_IDS: withDefault(
    commaList.pipe(
      z.array(
        z.string().regex(/^(discord|slack|web):[A-Za-z0-9_-]{1,64}$/, {
          error: (issue) => `must name each admin with its platform, e.g. discord:123456789012345678, slack:U012AB3CD or web:web-0f3a… (got ${JSON.stringify(issue.input)})`,
        }),
      ),
    ),
    '',
  ),
  /** Signs the web chat's session cookies; without it the bot keeps a random one in DATA_DIR (one bot process only). */
  WEB_SESSION_SECRET: z.preprocess((value) => (value === '' ? undefined : value), z.string().min(32, 'must be at least 32 characters long').optional()),
  /** Typed once in the web chat as `/admin login <token>`; without it the web chat has no admins but those listed as web:… */
  WEB_ADMIN_TOKEN: z.preprocess((value) => (value === '' ? undefined : value), z.string().min(16, 'must be at least 16 characters long').optional()),
  DISCORD_ADMIN_ROLE_IDS: withDefault(commaList, ''),
  RATE_LIMIT_USER_PER_MINUTE: optionalPositiveInt('a whole number of requests, at least 1'),
  RATE_LIMIT_WORKSPACE_PER_MINUTE: positiveInt(60, 'a whole number of requests, at least 1'),
  S3_ENDPOINT: z.preprocess((value) => (value === '' ? undefined : value), urlWithProtocols(['http:', 'https:']).optional()),
  S3_BUCKET: optionalText(),
  S3_REGION: withDefault(z.string(), 'us-east-1'),
  S3_ACCESS_KEY_ID: optionalText(),
  S3_SECRET_ACCESS_KEY: optionalText(),
});
type ConfigEnv = z.infer<typeof ConfigEnv>;

export interface Config {
  role: Role;
  redisUrl: string;
  /** BullMQ key prefix: queues live at `<queuePrefix>:<queue>:wait` etc. (what a KEDA trigger watches). */
  queuePrefix: string;
  /** No URL means embedded PGlite under `dataDir`. */
  database: { kind: 'postgres'; url: string } | { kind: 'pglite'; dir: string };
  dataDir: string;
  imageStore: { kind: 'local'; dir: string } | { kind: 's3'; endpoint: string; bucket: string; region: string; accessKeyId: string; secretAccessKey: string };
  modelDir: string;
  ortProviders: OrtProvider[];
  /** Undefined leaves ONNX Runtime's own choice. */
  ortThreads: number | undefined;
  /** CUDA/TensorRT settings, already checked against what onnxruntime-node can pass (src/engine/provider-options.ts). */
  gpuProviderOptions: GpuProviderOptions;
  workerConcurrency: number;
  previewIntervalMs: number;
  /** The address every server binds. */
  host: string;
  httpPort: number;
  webPort: number;
  slackPort: number;
  discordInteractionsPort: number;
  discord: { token: string; appId: string; publicKey: string | undefined } | undefined;
  slack: { botToken: string; appToken: string | undefined; signingSecret: string | undefined } | undefined;
  /** Undefined disables the queue dashboard rather than serving it unprotected. */
  admin: { user: string; password: string } | undefined;
  logLevel: (typeof LOG_LEVELS)[number];
  logRedactPrompts: boolean;
  promptBlocklist: string[];
  rateLimits: { userPerMinute: number; workspacePerMinute: number };
  /** The default quota policy's allowance (docs/QUOTA.md); null is unlimited. */
  quota: { unitsPerPeriod: number | null; period: 'day' | 'week' | 'month' };
  jobCaps: { perUser: number; perWorkspace: number };
  workerShutdownDeadlineMs: number;
  /**
   * Chat users who are admins besides Discord's Manage Server permission and Slack's workspace admins, each as
   * `platform:id` (discord:…, slack:…, web:…).
   */
  chatAdmins: { userIds: string[]; discordRoleIds: string[] };
  /** The web chat's cookie secret (undefined: kept in DATA_DIR) and its admin token (undefined: no token admins). */
  web: { sessionSecret: string | undefined; adminToken: string | undefined };
}

interface Problem {
  variable: string;
  message: string;
}

function gpuProviderOptions(env: ConfigEnv): GpuProviderOptions {
  const options: GpuProviderOptions = {
    deviceId: env.GPU_DEVICE_ID,
    cudaMemoryLimitBytes: env.CUDA_MEMORY_LIMIT_MB === undefined ? undefined : env.CUDA_MEMORY_LIMIT_MB * 1024 * 1024,
    cudnnConvAlgoSearch: env.CUDNN_CONV_ALGO_SEARCH,
    tensorrtEngineCacheDir: env.TENSORRT_ENGINE_CACHE_DIR,
    tensorrtFp16: env.TENSORRT_FP16,
  };
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
}

function crossChecks(env: ConfigEnv, role: Role): Problem[] {
  const problems: Problem[] = [];
  if (role !== 'bot') {
    for (const problem of providerOptionProblems(env.ORT_PROVIDERS, gpuProviderOptions(env))) problems.push({ variable: problem.setting, message: problem.message });
  }
  const needs = (present: string, missing: string, value: unknown) => {
    if (value === undefined) problems.push({ variable: missing, message: `is required when ${present} is set` });
  };
  if (env.DISCORD_TOKEN !== undefined) needs('DISCORD_TOKEN', 'DISCORD_APP_ID', env.DISCORD_APP_ID);
  if (env.DISCORD_APP_ID !== undefined || env.DISCORD_PUBLIC_KEY !== undefined) {
    needs(env.DISCORD_APP_ID !== undefined ? 'DISCORD_APP_ID' : 'DISCORD_PUBLIC_KEY', 'DISCORD_TOKEN', env.DISCORD_TOKEN);
  }
  if (env.SLACK_APP_TOKEN !== undefined || env.SLACK_SIGNING_SECRET !== undefined) {
    needs(env.SLACK_APP_TOKEN !== undefined ? 'SLACK_APP_TOKEN' : 'SLACK_SIGNING_SECRET', 'SLACK_BOT_TOKEN', env.SLACK_BOT_TOKEN);
  }
  if (env.SLACK_BOT_TOKEN !== undefined && env.SLACK_APP_TOKEN === undefined && env.SLACK_SIGNING_SECRET === undefined) {
    problems.push({
      variable: 'SLACK_APP_TOKEN',
      message: 'or SLACK_SIGNING_SECRET is required when SLACK_BOT_TOKEN is set (Socket Mode needs the app token, HTTP events the signing secret)',
    });
  }
  if (env.ADMIN_USER !== undefined) needs('ADMIN_USER', 'ADMIN_PASSWORD', env.ADMIN_PASSWORD);
  if (env.ADMIN_PASSWORD !== undefined) needs('ADMIN_PASSWORD', 'ADMIN_USER', env.ADMIN_USER);
  const s3 = ['S3_ENDPOINT', 'S3_BUCKET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY'] as const;
  const firstS3 = s3.find((name) => env[name] !== undefined);
  if (firstS3) {
    for (const name of s3) needs(firstS3, name, env[name]);
  }
  const listeners = listenersOf(toConfig(env, role));
  for (const [index, listener] of listeners.entries()) {
    const earlier = listeners.slice(0, index).find((other) => other.port === listener.port && listener.port !== 0);
    if (earlier) problems.push({ variable: earlier.variable, message: `must differ from ${listener.variable} (both are ${listener.port})` });
  }
  return problems;
}

function toConfig(env: ConfigEnv, role: Role): Config {
  const perUser = role === 'all' && !env.DISCORD_TOKEN && !env.SLACK_BOT_TOKEN ? PER_USER_DEFAULTS.local : PER_USER_DEFAULTS.shared;
  const s3 =
    env.S3_ENDPOINT && env.S3_BUCKET && env.S3_ACCESS_KEY_ID && env.S3_SECRET_ACCESS_KEY
      ? {
          kind: 's3' as const,
          endpoint: env.S3_ENDPOINT,
          bucket: env.S3_BUCKET,
          region: env.S3_REGION,
          accessKeyId: env.S3_ACCESS_KEY_ID,
          secretAccessKey: env.S3_SECRET_ACCESS_KEY,
        }
      : undefined;
  return {
    role,
    redisUrl: env.REDIS_URL,
    queuePrefix: env.QUEUE_PREFIX,
    database: env.DATABASE_URL ? { kind: 'postgres', url: env.DATABASE_URL } : { kind: 'pglite', dir: join(env.DATA_DIR, 'pglite') },
    dataDir: env.DATA_DIR,
    imageStore: s3 ?? { kind: 'local', dir: env.IMAGE_DIR ?? join(env.DATA_DIR, 'images') },
    modelDir: env.MODEL_DIR,
    ortProviders: env.ORT_PROVIDERS,
    ortThreads: env.ORT_THREADS,
    gpuProviderOptions: gpuProviderOptions(env),
    workerConcurrency: env.WORKER_CONCURRENCY,
    previewIntervalMs: env.PREVIEW_INTERVAL_MS,
    host: env.HOST,
    httpPort: env.HTTP_PORT,
    webPort: env.WEB_PORT,
    slackPort: env.SLACK_PORT,
    discordInteractionsPort: env.DISCORD_INTERACTIONS_PORT,
    discord: env.DISCORD_TOKEN && env.DISCORD_APP_ID ? { token: env.DISCORD_TOKEN, appId: env.DISCORD_APP_ID, publicKey: env.DISCORD_PUBLIC_KEY } : undefined,
    slack: env.SLACK_BOT_TOKEN
      ? { botToken: env.SLACK_BOT_TOKEN, appToken: env.SLACK_APP_TOKEN, signingSecret: env.SLACK_SIGNING_SECRET }
      : undefined,
    admin: env.ADMIN_USER && env.ADMIN_PASSWORD ? { user: env.ADMIN_USER, password: env.ADMIN_PASSWORD } : undefined,
    logLevel: env.LOG_LEVEL,
    logRedactPrompts: env.LOG_REDACT_PROMPTS,
    promptBlocklist: env.PROMPT_BLOCKLIST,
    rateLimits: { userPerMinute: env.RATE_LIMIT_USER_PER_MINUTE ?? perUser.commandsPerMinute, workspacePerMinute: env.RATE_LIMIT_WORKSPACE_PER_MINUTE },
    quota: { unitsPerPeriod: env.QUOTA_UNITS_PER_PERIOD === 'unlimited' ? null : env.QUOTA_UNITS_PER_PERIOD, period: env.QUOTA_PERIOD },
    jobCaps: { perUser: env.MAX_JOBS_PER_USER ?? perUser.jobsAtOnce, perWorkspace: env.MAX_JOBS_PER_WORKSPACE },
    workerShutdownDeadlineMs: env.WORKER_SHUTDOWN_DEADLINE_MS,
    chatAdmins: { userIds: env.CHAT_ADMIN_USER_IDS, discordRoleIds: env.DISCORD_ADMIN_ROLE_IDS },
    web: { sessionSecret: env.WEB_SESSION_SECRET, adminToken: env.WEB_ADMIN_TOKEN },
  };
}

/** A port a role listens on, named as the Compose file and the Kubernetes Services name it. */
export interface Listener {
  name: 'http' | 'web' | 'slack' | 'discord';
  variable: string;
  port: number;
}

/**
 * Every port a process of this configuration listens on (all on `host`): health for every role, the web chat for the
 * chat roles, Slack's HTTP receiver when Slack runs without Socket Mode, Discord's interactions endpoint when the
 * application's public key is set (instead of the gateway). startService opens exactly these.
 */
export function listenersOf(config: Config): Listener[] {
  const listeners: Listener[] = [{ name: 'http', variable: 'HTTP_PORT', port: config.httpPort }];
  if (config.role === 'worker') return listeners;
  listeners.push({ name: 'web', variable: 'WEB_PORT', port: config.webPort });
  if (config.slack && !config.slack.appToken) listeners.push({ name: 'slack', variable: 'SLACK_PORT', port: config.slackPort });
  if (config.discord?.publicKey) listeners.push({ name: 'discord', variable: 'DISCORD_INTERACTIONS_PORT', port: config.discordInteractionsPort });
  return listeners;
}

function describeReceived(variable: string, value: unknown): string {
  if (value === undefined) return '';
  if ((SECRET_VARIABLES as readonly string[]).includes(variable)) return ' (value hidden)';
  if ((URLS_WITH_CREDENTIALS as readonly string[]).includes(variable)) return ` (got ${JSON.stringify(maskUrl(String(value)))})`;
  return ` (got ${JSON.stringify(value)})`;
}

function readConfigFile(path: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ImagineError('invalid_input', `CONFIG_FILE ${path} could not be read: ${(error as Error).message}`, { variable: 'CONFIG_FILE' });
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ImagineError('invalid_input', `CONFIG_FILE ${path} must be a mapping of variable names to values`, { variable: 'CONFIG_FILE' });
  }
  return Object.fromEntries(Object.entries(parsed).map(([name, value]) => [name, Array.isArray(value) ? value.join(',') : String(value)]));
}

/**
 * Reads and checks every setting once, at start-up. `CONFIG_FILE` (YAML or JSON, the same variable names as keys)
 * supplies values the environment does not set; the environment wins. Every problem is reported in one error that
 * names each variable, and never shows a secret's value.
 */
export function loadConfig(env: Record<string, string | undefined>, role: Role): Config {
  if (!(ROLES as readonly string[]).includes(role)) {
    throw new ImagineError('invalid_input', `Unknown role ${JSON.stringify(role)}: use one of ${ROLES.join(', ')}.`, { variable: 'ROLE' });
  }
  const fromFile = env.CONFIG_FILE ? readConfigFile(env.CONFIG_FILE) : {};
  const merged: Record<string, string | undefined> = { ...fromFile };
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined) merged[name] = value;
  }
  // PORT is what hosting platforms and habit reach for; WEB_PORT, when also set, says which port the chat is on.
  if ((merged.WEB_PORT === undefined || merged.WEB_PORT === '') && merged.PORT) merged.WEB_PORT = merged.PORT;
  const parsed = ConfigEnv.safeParse(merged);
  const problems: Problem[] = parsed.success
    ? crossChecks(parsed.data, role)
    : parsed.error.issues.map((issue) => {
        const variable = String(issue.path[0] ?? 'configuration');
        return { variable, message: `${issue.message}${describeReceived(variable, merged[variable])}` };
      });
  if (!parsed.success || problems.length > 0) {
    const lines = problems.map((problem) => `${problem.variable} ${problem.message}`);
    throw new ImagineError('invalid_input', `Invalid configuration: ${lines.join('; ')}.`, {
      variables: [...new Set(problems.map((problem) => problem.variable))],
    });
  }
  return toConfig(parsed.data, role);
}

function maskUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.password) return url;
    parsed.password = MASK;
    return parsed.toString();
  } catch {
    return MASK;
  }
}

const secret = (value: string | undefined) => (value === undefined ? '(not set)' : MASK);

/** The configuration as start-up logs show it: everything an operator needs to check, no secret readable. */
export function describeConfig(config: Config): Record<string, string | number | boolean | string[]> {
  return {
    role: config.role,
    redisUrl: maskUrl(config.redisUrl),
    queuePrefix: config.queuePrefix,
    database: config.database.kind === 'postgres' ? maskUrl(config.database.url) : `pglite:${config.database.dir}`,
    dataDir: config.dataDir,
    imageStore: config.imageStore.kind === 's3' ? `s3:${config.imageStore.endpoint}/${config.imageStore.bucket}` : `local:${config.imageStore.dir}`,
    s3SecretAccessKey: secret(config.imageStore.kind === 's3' ? config.imageStore.secretAccessKey : undefined),
    modelDir: config.modelDir,
    ortProviders: config.ortProviders,
    ortThreads: config.ortThreads ?? 'onnxruntime default',
    gpuDeviceId: config.gpuProviderOptions.deviceId ?? '(provider default)',
    workerConcurrency: config.workerConcurrency,
    previewIntervalMs: config.previewIntervalMs,
    host: config.host,
    httpPort: config.httpPort,
    webPort: config.webPort,
    slackPort: config.slackPort,
    discordInteractionsPort: config.discordInteractionsPort,
    discordAppId: config.discord?.appId ?? '(not set)',
    discordToken: secret(config.discord?.token),
    discordPublicKey: secret(config.discord?.publicKey),
    slackBotToken: secret(config.slack?.botToken),
    slackAppToken: secret(config.slack?.appToken),
    slackSigningSecret: secret(config.slack?.signingSecret),
    adminUser: config.admin?.user ?? '(dashboard disabled)',
    adminPassword: secret(config.admin?.password),
    chatAdminUserIds: config.chatAdmins.userIds,
    webSessionSecret: secret(config.web.sessionSecret),
    webAdminToken: secret(config.web.adminToken),
    logLevel: config.logLevel,
    logRedactPrompts: config.logRedactPrompts,
    promptBlocklistTerms: config.promptBlocklist.length,
    rateLimitUserPerMinute: config.rateLimits.userPerMinute,
    rateLimitWorkspacePerMinute: config.rateLimits.workspacePerMinute,
  };
}
