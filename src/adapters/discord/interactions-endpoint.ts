import { createPublicKey, verify } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { findCommand } from '../../core/chat/commands/index.js';
import type { OptionValues } from '../../core/chat/commands/command.js';
import { createMemoryDeliveryLog, type DeliveryLog } from '../../core/chat/deliveries.js';

/**
 * Discord's alternative to the gateway: interactions POSTed to our URL. Every request must carry a valid Ed25519
 * signature over `timestamp + body`; a signature does not expire, so we also refuse timestamps outside a window
 * around now, and an interaction id seen before (a replay of a captured request inside that window).
 */

/** Interaction payloads are a few kilobytes (resolved users and attachments included); refuse more before reading. */
export const DISCORD_MAX_BODY_BYTES = 256 * 1024;
/** How far ahead of our clock a request may be dated: clock skew, not a request prepared for later. */
export const DISCORD_MAX_FUTURE_SKEW_SECONDS = 30;

// DER prefix that turns a raw 32-byte Ed25519 public key into SubjectPublicKeyInfo (RFC 8410).
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface SignedRequest {
  publicKeyHex: string;
  signatureHex: string | undefined;
  timestamp: string | undefined;
  rawBody: Buffer;
  nowMs: number;
  maxAgeSeconds: number;
}

const timestampInWindow = (timestampSeconds: number, nowMs: number, maxAgeSeconds: number) =>
  timestampSeconds >= nowMs / 1000 - maxAgeSeconds && timestampSeconds <= nowMs / 1000 + DISCORD_MAX_FUTURE_SKEW_SECONDS;

export function verifyDiscordRequest(request: SignedRequest): boolean {
  const { signatureHex, timestamp } = request;
  if (!signatureHex || !timestamp || !/^\d{1,12}$/.test(timestamp) || !/^[0-9a-f]{128}$/i.test(signatureHex)) return false;
  if (!timestampInWindow(Number(timestamp), request.nowMs, request.maxAgeSeconds)) return false;
  try {
    const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(request.publicKeyHex, 'hex')]), format: 'der', type: 'spki' });
    return verify(null, Buffer.concat([Buffer.from(timestamp), request.rawBody]), key, Buffer.from(signatureHex, 'hex'));
  } catch {
    return false;
  }
}

export interface InteractionsEndpointOptions {
  /** The application's public key from the developer portal, hex. */
  publicKeyHex: string;
  /** Called after Discord got its deferred answer; the handler continues through the interaction webhook. */
  onInteraction: (interaction: any) => void;
  maxAgeSeconds?: number;
  now?: () => number;
  /** Which interaction ids were handled already (the service shares one in Redis); in memory by default. */
  deliveries?: DeliveryLog;
}

const PING = 1;
const APPLICATION_COMMAND = 2;
const MESSAGE_COMPONENT = 3;
const EPHEMERAL = 64;

function topLevelOptions(options: { type: number; name: string; value?: unknown; options?: any[] }[] = []): OptionValues {
  // Subcommands (1) and groups (2) nest their options one level down per step.
  let level = options;
  while (level.length === 1 && (level[0].type === 1 || level[0].type === 2)) level = level[0].options ?? [];
  return Object.fromEntries(level.map((option) => [option.name, option.value as OptionValues[string]]));
}

/** The body, or null once it grows past `maxBytes` (a chunked body has no length to refuse it by up front). */
async function readBody(request: IncomingMessage, maxBytes: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of request) {
    length += (chunk as Buffer).length;
    if (length > maxBytes) return null;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** An HTTP server answering POST /interactions; listen on it yourself (`server.listen(port)`). */
export function createInteractionsEndpoint(options: InteractionsEndpointOptions): Server {
  const now = options.now ?? Date.now;
  const maxAgeSeconds = options.maxAgeSeconds ?? 300;
  const deliveries = options.deliveries ?? createMemoryDeliveryLog();
  return createServer(async (request, response) => {
    const send = (status: number, payload?: unknown, close = false) => {
      response.writeHead(status, { ...(payload !== undefined && { 'content-type': 'application/json' }), ...(close && { connection: 'close' }) });
      response.end(payload === undefined ? undefined : JSON.stringify(payload));
    };
    if (request.method !== 'POST' || request.url !== '/interactions') return send(404);
    // Everything that needs no body is checked before a byte of it is read.
    const signatureHex = request.headers['x-signature-ed25519'] as string | undefined;
    const timestamp = request.headers['x-signature-timestamp'] as string | undefined;
    if (!signatureHex || !timestamp || !/^\d{1,12}$/.test(timestamp) || !timestampInWindow(Number(timestamp), now(), maxAgeSeconds)) {
      return send(401, { error: 'invalid request signature' }, true);
    }
    const declared = request.headers['content-length'];
    if (declared !== undefined && (!/^\d+$/.test(declared) || Number(declared) > DISCORD_MAX_BODY_BYTES)) {
      return send(413, { error: `bodies are limited to ${DISCORD_MAX_BODY_BYTES} bytes` }, true);
    }
    const rawBody = await readBody(request, DISCORD_MAX_BODY_BYTES);
    if (!rawBody) return send(413, { error: `bodies are limited to ${DISCORD_MAX_BODY_BYTES} bytes` }, true);
    const verified = verifyDiscordRequest({ publicKeyHex: options.publicKeyHex, signatureHex, timestamp, rawBody, nowMs: now(), maxAgeSeconds });
    if (!verified) return send(401, { error: 'invalid request signature' });
    let interaction: any;
    try {
      interaction = JSON.parse(rawBody.toString('utf8'));
    } catch {
      return send(400, { error: 'body is not JSON' });
    }
    if (interaction.type === PING) return send(200, { type: 1 });
    if (typeof interaction.id !== 'string' || !(await deliveries.firstDelivery(`discord:interaction:${interaction.id}`))) {
      return send(409, { error: 'this interaction was already received' });
    }
    if (interaction.type === APPLICATION_COMMAND) {
      const command = findCommand(interaction.data?.name ?? '');
      const ephemeral = command ? command.ephemeral(topLevelOptions(interaction.data?.options)) : true;
      send(200, { type: 5, data: { flags: ephemeral ? EPHEMERAL : 0 } });
    } else if (interaction.type === MESSAGE_COMPONENT) {
      send(200, { type: 6 });
    } else {
      return send(400, { error: `unsupported interaction type ${interaction.type}` });
    }
    options.onInteraction(interaction);
  });
}
