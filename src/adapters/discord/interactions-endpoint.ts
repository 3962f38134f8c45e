import { createPublicKey, verify } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { findCommand } from '../../core/chat/commands/index.js';
import type { OptionValues } from '../../core/chat/commands/command.js';

/**
 * Discord's alternative to the gateway: interactions POSTed to our URL. Every request must carry a valid Ed25519
 * signature over `timestamp + body`; a signature does not expire, so we also refuse old timestamps (replays).
 */

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

export function verifyDiscordRequest(request: SignedRequest): boolean {
  const { signatureHex, timestamp } = request;
  if (!signatureHex || !timestamp || !/^\d{1,12}$/.test(timestamp) || !/^[0-9a-f]{128}$/i.test(signatureHex)) return false;
  if (Math.abs(request.nowMs / 1000 - Number(timestamp)) > request.maxAgeSeconds) return false;
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

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** An HTTP server answering POST /interactions; listen on it yourself (`server.listen(port)`). */
export function createInteractionsEndpoint(options: InteractionsEndpointOptions): Server {
  const now = options.now ?? Date.now;
  return createServer(async (request, response) => {
    const send = (status: number, payload?: unknown) => {
      response.writeHead(status, payload === undefined ? {} : { 'content-type': 'application/json' });
      response.end(payload === undefined ? undefined : JSON.stringify(payload));
    };
    if (request.method !== 'POST' || request.url !== '/interactions') return send(404);
    const rawBody = await readBody(request);
    const verified = verifyDiscordRequest({
      publicKeyHex: options.publicKeyHex,
      signatureHex: request.headers['x-signature-ed25519'] as string | undefined,
      timestamp: request.headers['x-signature-timestamp'] as string | undefined,
      rawBody,
      nowMs: now(),
      maxAgeSeconds: options.maxAgeSeconds ?? 300,
    });
    if (!verified) return send(401, { error: 'invalid request signature' });
    let interaction: any;
    try {
      interaction = JSON.parse(rawBody.toString('utf8'));
    } catch {
      return send(400, { error: 'body is not JSON' });
    }
    if (interaction.type === PING) return send(200, { type: 1 });
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
