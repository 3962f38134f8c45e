import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHealthServer, type HealthServer } from '../../src/service/http.js';
import { bullQueueDepths, createMetrics } from '../../src/service/metrics.js';
import { deletePrefix, sharedRedisUrl, testPrefix } from '../support/redis.js';

/**
 * A small check of the Prometheus text exposition format (version 0.0.4): every line is a HELP or TYPE comment or a
 * sample `name{label="value",…} number`, every sample belongs to a family declared by TYPE. Returns the samples.
 */
function parsePrometheusText(text: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  const types = new Map<string, string>();
  const samples: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?(?:[0-9.e+-]+|Inf|NaN|\+Inf))$/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (comment) {
      if (comment[1] === 'TYPE') {
        expect(['counter', 'gauge', 'histogram', 'summary', 'untyped']).toContain(comment[3]);
        types.set(comment[2], comment[3]);
      }
      continue;
    }
    const match = sample.exec(line);
    if (!match) throw new Error(`not Prometheus text: ${JSON.stringify(line)}`);
    const [, name, labelText = '', valueText] = match;
    const family = name.replace(/_(bucket|sum|count)$/, '');
    if (!types.has(name) && !types.has(family)) throw new Error(`sample ${name} has no TYPE line`);
    const labels = Object.fromEntries([...labelText.matchAll(label)].map((m) => [m[1], m[2]]));
    const value = Number(valueText.replace(/^\+?Inf$/, 'Infinity'));
    if (Number.isNaN(value) && valueText !== 'NaN') throw new Error(`bad sample value in ${JSON.stringify(line)}`);
    samples.push({ name, labels, value });
  }
  return samples;
}

describe('health and metrics server', () => {
  let server: HealthServer;
  let redisReady = true;
  const metrics = createMetrics({
    queueDepths: async () => [
      { queue: 'images.default', state: 'waiting', count: 3 },
      { queue: 'images.default', state: 'prioritized', count: 2 },
    ],
  });

  beforeAll(async () => {
    server = await startHealthServer({
      port: 0,
      host: '127.0.0.1',
      readiness: { redis: async () => redisReady || Promise.reject(new Error('connection refused')), model: async () => true },
      metrics,
    });
  });
  afterAll(async () => {
    await server.close();
  });

  it('answers /healthz while the process runs', async () => {
    const response = await fetch(`${server.url}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('flips /readyz to 503 when a check fails, naming the check, and back when it passes', async () => {
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { redis: { ok: true }, model: { ok: true } } });

    redisReady = false;
    const notReady = await fetch(`${server.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({
      status: 'not_ready',
      checks: { redis: { ok: false, error: 'connection refused' }, model: { ok: true } },
    });

    redisReady = true;
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
  });

  it('serves every metric as Prometheus text', async () => {
    metrics.jobs.inc({ kind: 'generate', state: 'completed' });
    metrics.waitTime.observe({ queue: 'images.default' }, 4.2);
    metrics.runTime.observe({ queue: 'images.default', kind: 'generate' }, 12);
    metrics.stepsPerSecond.set({ queue: 'images.default', provider: 'cpu' }, 1.7);
    metrics.previewEdits.inc({ platform: 'discord', outcome: 'throttled' });
    metrics.quotaRefusals.inc({ platform: 'slack', reason: 'daily_quota' });
    metrics.chatApiErrors.inc({ platform: 'discord', status: '500' });
    metrics.chatApiRateLimited.inc({ platform: 'discord' });
    metrics.modelLoadTime.set({ model: 'default', provider: 'cpu' }, 3.5);

    const response = await fetch(`${server.url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const samples = parsePrometheusText(await response.text());
    const value = (name: string, labels: Record<string, string> = {}) =>
      samples.find((s) => s.name === name && Object.entries(labels).every(([key, v]) => s.labels[key] === v))?.value;

    expect(value('imagine_jobs_total', { kind: 'generate', state: 'completed' })).toBe(1);
    expect(value('imagine_queue_depth', { queue: 'images.default', state: 'waiting' })).toBe(3);
    expect(value('imagine_queue_depth', { queue: 'images.default', state: 'prioritized' })).toBe(2);
    expect(value('imagine_queue_depth_readable')).toBe(1);
    expect(value('imagine_job_wait_seconds_count', { queue: 'images.default' })).toBe(1);
    expect(value('imagine_job_wait_seconds_bucket', { queue: 'images.default', le: '5' })).toBe(1);
    expect(value('imagine_job_run_seconds_sum', { queue: 'images.default', kind: 'generate' })).toBe(12);
    expect(value('imagine_denoise_steps_per_second', { provider: 'cpu' })).toBe(1.7);
    expect(value('imagine_preview_edits_total', { outcome: 'throttled' })).toBe(1);
    expect(value('imagine_quota_refusals_total', { reason: 'daily_quota' })).toBe(1);
    expect(value('imagine_chat_api_errors_total', { status: '500' })).toBe(1);
    expect(value('imagine_chat_api_rate_limited_total', { platform: 'discord' })).toBe(1);
    expect(value('imagine_model_load_seconds', { model: 'default' })).toBe(3.5);
    expect(value('imagine_worker_rss_bytes')).toBeGreaterThan(0);
  });

  it('still serves the other metrics when the queue depths cannot be read', async () => {
    const unreachable = createMetrics({ queueDepths: () => Promise.reject(new Error('connect ECONNREFUSED')) });
    unreachable.jobs.inc({ kind: 'generate', state: 'failed' });
    const outage = await startHealthServer({ port: 0, host: '127.0.0.1', readiness: {}, metrics: unreachable });
    try {
      const response = await fetch(`${outage.url}/metrics`);
      expect(response.status).toBe(200);
      const samples = parsePrometheusText(await response.text());
      expect(samples.find((s) => s.name === 'imagine_queue_depth_readable')?.value).toBe(0);
      expect(samples.find((s) => s.name === 'imagine_jobs_total')?.value).toBe(1);
      expect(samples.some((s) => s.name === 'imagine_queue_depth')).toBe(false);
    } finally {
      await outage.close();
    }
  });

  it('has no dashboard when no admin credential is configured', async () => {
    expect((await fetch(`${server.url}/admin/queues`)).status).toBe(404);
  });
});

describe('queue dashboard', () => {
  const prefix = testPrefix('dashboard');
  const admin = { user: 'ops', password: 'correct horse battery' };
  let redisUrl: string;
  let queue: Queue;
  let server: HealthServer;
  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

  beforeAll(async () => {
    redisUrl = await sharedRedisUrl();
    queue = new Queue('images.default', { connection: { url: redisUrl }, prefix });
    await queue.add('generate', { n: 1 }, { priority: 1 });
    const metrics = createMetrics({ queueDepths: bullQueueDepths([queue]) });
    server = await startHealthServer({ port: 0, host: '127.0.0.1', readiness: {}, metrics, dashboard: { admin, queues: [queue] } });
  });
  afterAll(async () => {
    await server.close();
    await queue.close();
    await deletePrefix(redisUrl, prefix);
  });

  it('answers 401 with a Basic challenge without credentials', async () => {
    const response = await fetch(`${server.url}/admin/queues`);
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
  });

  it('answers 401 to a wrong password and to a wrong user', async () => {
    expect((await fetch(`${server.url}/admin/queues`, { headers: { authorization: basic('ops', 'guess') } })).status).toBe(401);
    expect((await fetch(`${server.url}/admin/queues`, { headers: { authorization: basic('root', admin.password) } })).status).toBe(401);
    expect((await fetch(`${server.url}/admin/queues/api/queues`)).status).toBe(401);
  });

  it('shows the queues to the admin', async () => {
    const authorization = basic(admin.user, admin.password);
    const page = await fetch(`${server.url}/admin/queues`, { headers: { authorization } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    const api = await fetch(`${server.url}/admin/queues/api/queues`, { headers: { authorization } });
    expect(api.status).toBe(200);
    const body = (await api.json()) as { queues: Array<{ name: string }> };
    expect(body.queues.map((q) => q.name)).toContain('images.default');
  });

  it('reports BullMQ queue depth by state, prioritized jobs included', async () => {
    const samples = parsePrometheusText(await (await fetch(`${server.url}/metrics`)).text());
    const prioritized = samples.find((s) => s.name === 'imagine_queue_depth' && s.labels.state === 'prioritized');
    expect(prioritized).toEqual({ name: 'imagine_queue_depth', labels: { queue: 'images.default', state: 'prioritized' }, value: 1 });
  });
});
