import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Queue } from 'bullmq';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Registry } from 'prom-client';
import type { Logger } from './logger.js';

/** Resolves when the dependency is usable; rejects or resolves `false` when it is not. */
export type ReadinessCheck = () => Promise<unknown>;

export interface HealthServerOptions {
  /** 0 picks a free port (tests). */
  port: number;
  host?: string;
  /** By name: `redis`, `database`, `model`… — only those that apply to this process's role. */
  readiness: Record<string, ReadinessCheck>;
  /** A check slower than this counts as failed, so a hung dependency cannot hang the probe. */
  readinessTimeoutMs?: number;
  metrics: { registry: Registry };
  /** The Bull Board dashboard at /admin/queues; left out when no admin credential is configured. */
  dashboard?: { admin: { user: string; password: string }; queues: Queue[] };
  logger?: Logger;
}

export interface HealthServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export const DASHBOARD_PATH = '/admin/queues';
const DEFAULT_READINESS_TIMEOUT_MS = 2_000;

type CheckOutcome = { ok: true } | { ok: false; error: string };

async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<CheckOutcome> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckOutcome>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, error: `no answer within ${timeoutMs} ms` }), timeoutMs);
  });
  const outcome = (async (): Promise<CheckOutcome> => {
    try {
      return (await check()) === false ? { ok: false, error: 'not ready' } : { ok: true };
    } catch (error) {
      return { ok: false, error: error instanceof Error ? error.message : String(error) };
    }
  })();
  try {
    return await Promise.race([outcome, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// Hashing both sides first gives equal-length buffers, so the comparison leaks neither content nor length.
function sameSecret(given: string, expected: string): boolean {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

function basicAuth(admin: { user: string; password: string }) {
  return (request: Request, response: Response, next: NextFunction) => {
    const header = request.headers.authorization ?? '';
    const [scheme, encoded] = header.split(' ');
    if (scheme?.toLowerCase() === 'basic' && encoded) {
      const decoded = Buffer.from(encoded, 'base64').toString('utf8');
      const separator = decoded.indexOf(':');
      const user = decoded.slice(0, separator);
      const password = decoded.slice(separator + 1);
      // Both comparisons always run, so a wrong user name answers as fast as a wrong password.
      const userMatches = sameSecret(user, admin.user);
      const passwordMatches = sameSecret(password, admin.password);
      if (separator >= 0 && userMatches && passwordMatches) {
        next();
        return;
      }
    }
    response.set('WWW-Authenticate', 'Basic realm="imagine-bot admin", charset="UTF-8"').status(401).send('Unauthorized\n');
  };
}

/**
 * The operations endpoint every role serves: liveness at /healthz (the process answers), readiness at /readyz (each
 * injected check passes), Prometheus text at /metrics and, with an admin credential, the queue dashboard.
 */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const app = express();
  app.disable('x-powered-by');
  const timeoutMs = options.readinessTimeoutMs ?? DEFAULT_READINESS_TIMEOUT_MS;

  app.get('/healthz', (_request, response) => {
    response.json({ status: 'ok' });
  });

  app.get('/readyz', async (_request, response) => {
    const names = Object.keys(options.readiness);
    const outcomes = await Promise.all(names.map((name) => runCheck(options.readiness[name], timeoutMs)));
    const checks = Object.fromEntries(names.map((name, index) => [name, outcomes[index]]));
    const ready = outcomes.every((outcome) => outcome.ok);
    if (!ready) options.logger?.warn({ checks }, 'not ready');
    response.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not_ready', checks });
  });

  app.get('/metrics', async (_request, response) => {
    try {
      const body = await options.metrics.registry.metrics();
      response.set('Content-Type', options.metrics.registry.contentType).send(body);
    } catch (error) {
      options.logger?.error({ err: error }, 'metrics collection failed');
      response.status(500).send('metrics collection failed\n');
    }
  });

  if (options.dashboard) {
    const serverAdapter = new ExpressAdapter();
    serverAdapter.setBasePath(DASHBOARD_PATH);
    createBullBoard({
      queues: options.dashboard.queues.map((queue) => new BullMQAdapter(queue)),
      serverAdapter,
    });
    app.use(DASHBOARD_PATH, basicAuth(options.dashboard.admin), serverAdapter.getRouter());
  }

  const server = app.listen(options.port, options.host ?? '0.0.0.0');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host && options.host !== '0.0.0.0' ? options.host : '127.0.0.1';
  options.logger?.info({ port }, 'health and metrics server listening');
  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
