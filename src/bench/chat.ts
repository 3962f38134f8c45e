import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { startDiscordBot } from '../adapters/discord/bot.js';
import { FakeDiscord, type RecordedDiscordRequest } from '../../test/support/fake-discord.js';
import { startServiceStack } from '../../test/support/service-stack.js';
import { appendBenchmarkRow, machineDescription } from './report.js';

/**
 * `npm run bench:chat -- [--users 50] [--steps 100] [--size 128x128] [--interval-ms 20] [--timeout-s 600]
 *   [--database pglite|postgres] [--worker in-process|child-process] [--json]`
 * Many people using /imagine at once, through the real discord.js bot, the loopback Discord fake and the real stack
 * (queue, one worker on the tiny-sd fixture model, in-memory PGlite as `npm start` has it or the test PostgreSQL,
 * image store; the worker in the bot's process as `npm start` has it, or the worker role in a child process, which
 * needs PostgreSQL) with production intervals for previews and message edits. Each user sends one /imagine; a new one
 * arrives every interval-ms. Figures:
 * - ackP50Ms / ackP99Ms: gateway dispatch of the command → the bot's deferral reaching Discord (Discord's limit is 3 s);
 * - firstPreviewP50Ms / firstPreviewP99Ms: dispatch → the first message edit that carries a preview (queue wait included);
 * - previewEditsPerMessagePerMinute: progress edits of all messages over the total time they showed progress (from a
 *   message's first progress edit to its result), and maxEditsPerMessagePer5s: the most edits one message got in 5 s;
 * - rateLimited: 429s the bot received. The fake answers 429 to the 6th edit of one message within 5 s, the pace the
 *   bot's edit coalescer is sized for (about 5 edits per 5 s, see DiscordBotOptions.editIntervalMs).
 * - eventLoopDelayP99Ms / eventLoopDelayMaxMs: how long the process's event loop stalled during the flood.
 * Everything runs on loopback, and the run stops when every message shows its result or the timeout passes.
 */
const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '50' },
    steps: { type: 'string', default: '100' },
    size: { type: 'string', default: '128x128' },
    'interval-ms': { type: 'string', default: '20' },
    'timeout-s': { type: 'string', default: '600' },
    database: { type: 'string', default: 'pglite' },
    worker: { type: 'string', default: 'in-process' },
    json: { type: 'boolean', default: false },
  },
});
const userCount = Number(values.users);
const steps = Number(values.steps);
const size = values.size;
const intervalMs = Number(values['interval-ms']);
const timeoutMs = Number(values['timeout-s']) * 1000;
if (values.database !== 'pglite' && values.database !== 'postgres') throw new Error('--database is pglite or postgres');
const database = values.database;
if (values.worker !== 'in-process' && values.worker !== 'child-process') throw new Error('--worker is in-process or child-process');
const worker = values.worker;

const EDIT_WINDOW_MS = 5_000;
const EDITS_PER_WINDOW = 5;

const stack = await startServiceStack({
  name: 'bench-chat',
  database,
  worker,
  previewIntervalMs: 1_500,
  jobCaps: { perUser: 3, perWorkspace: userCount * 3 },
});
const fake = await FakeDiscord.start();

// The fake records a request before it decides whether to rate-limit it, so timing and the 429 policy hook in here.
const arrivedAtMs = new Map<RecordedDiscordRequest, number>();
const recentEditsMs = new Map<string, number[]>();
let rateLimited = 0;
const record = fake.requests.push.bind(fake.requests);
fake.requests.push = (...calls: RecordedDiscordRequest[]) => {
  const nowMs = performance.now();
  for (const call of calls) {
    arrivedAtMs.set(call, nowMs);
    if (call.method !== 'PATCH') continue;
    const recent = (recentEditsMs.get(call.path) ?? []).filter((atMs) => nowMs - atMs < EDIT_WINDOW_MS);
    if (recent.length >= EDITS_PER_WINDOW) {
      rateLimited += 1;
      fake.rateLimitNext(new RegExp(`^${call.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`), (EDIT_WINDOW_MS - (nowMs - recent[0])) / 1000);
    } else {
      recent.push(nowMs);
    }
    recentEditsMs.set(call.path, recent);
  }
  return record(...calls);
};

const bot = await startDiscordBot({ token: 'bench-token', service: stack.service, config: stack.chatConfig, apiBaseUrl: fake.apiUrl, restRetries: 0 });

const imagineOptions = (prompt: string) => [
  { name: 'prompt', type: 3, value: prompt },
  { name: 'size', type: 3, value: size },
  { name: 'steps', type: 4, value: steps },
];

// One command first, not counted: connections, caches and the model's first run warm up as on a bot that has been up a while.
const warmUp = fake.slashCommand('imagine', imagineOptions('a warm-up fox'), { userId: '949999999999999999' });
const warmUpDeadlineMs = performance.now() + timeoutMs;
while (
  !fake.requests.some((call) => call.method === 'PATCH' && call.path === `/channels/${fake.channelId}/messages/${fake.originalMessage(warmUp.token)?.id}` && call.body?.components?.length > 0) &&
  performance.now() < warmUpDeadlineMs
) {
  await new Promise((resolve) => setTimeout(resolve, 100));
}

// Bot, worker and (with PGlite) the database share this process's event loop, as in `npm start`: its stalls delay acks.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

interface Command {
  token: string;
  dispatchedAtMs: number;
}
const commands: Command[] = [];
for (let user = 0; user < userCount; user += 1) {
  const userId = String(950_000_000_000_000_000n + BigInt(user));
  const dispatchedAtMs = performance.now();
  const { token } = fake.slashCommand('imagine', imagineOptions(`a red fox number ${user}`), { userId });
  commands.push({ token, dispatchedAtMs });
  await new Promise((resolve) => setTimeout(resolve, intervalMs));
}

const messagePath = (messageId: string) => `/channels/${fake.channelId}/messages/${messageId}`;
const isResult = (call: RecordedDiscordRequest) => Array.isArray(call.body?.components) && call.body.components.length > 0;
const isRefusal = (call: RecordedDiscordRequest, token: string) => call.method === 'POST' && call.path.includes(token) && call.body?.flags === 64;
const finished = (command: Command) => {
  const messageId = fake.originalMessage(command.token)?.id;
  return fake.requests.some((call) => (messageId !== undefined && call.path === messagePath(messageId) && isResult(call) && call.method === 'PATCH') || isRefusal(call, command.token));
};
const deadlineMs = performance.now() + timeoutMs;
while (!commands.every(finished) && performance.now() < deadlineMs) await new Promise((resolve) => setTimeout(resolve, 100));
const timedOut = !commands.every(finished);
loopDelay.disable();

const ackMs: number[] = [];
const firstPreviewMs: number[] = [];
let completed = 0;
let refused = 0;
let progressEdits = 0;
let progressShownMs = 0;
let maxEditsPer5s = 0;
for (const command of commands) {
  const callback = fake.requests.find((call) => call.path.endsWith(`/${command.token}/callback`));
  if (callback) ackMs.push(arrivedAtMs.get(callback)! - command.dispatchedAtMs);
  if (fake.requests.some((call) => isRefusal(call, command.token))) refused += 1;
  const messageId = fake.originalMessage(command.token)?.id;
  if (!messageId) continue;
  const edits = fake.requests.filter((call) => call.method === 'PATCH' && call.path === messagePath(messageId) && arrivedAtMs.has(call));
  const editTimesMs = edits.map((call) => arrivedAtMs.get(call)!);
  for (const startMs of editTimesMs) {
    maxEditsPer5s = Math.max(maxEditsPer5s, editTimesMs.filter((atMs) => atMs >= startMs && atMs - startMs < EDIT_WINDOW_MS).length);
  }
  const progress = edits.filter((call) => /step \d+\/\d+/.test(call.body?.content ?? ''));
  const result = edits.find(isResult);
  if (result) completed += 1;
  const firstPreview = progress.find((call) => call.files.some((file) => file.name === 'preview.webp'));
  if (firstPreview) firstPreviewMs.push(arrivedAtMs.get(firstPreview)! - command.dispatchedAtMs);
  if (progress.length > 0 && result) {
    progressEdits += progress.length;
    progressShownMs += arrivedAtMs.get(result)! - arrivedAtMs.get(progress[0])!;
  }
}

await bot.stop();
await fake.close();
await stack.stop();

const percentile = (samples: number[], fraction: number) => {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))];
};
const round = (value: number) => Math.round(value * 10) / 10;
const figures = {
  users: userCount,
  database,
  worker,
  size,
  steps,
  completed,
  refused,
  timedOut: String(timedOut),
  ackP50Ms: round(percentile(ackMs, 0.5)),
  ackP99Ms: round(percentile(ackMs, 0.99)),
  firstPreviewP50Ms: round(percentile(firstPreviewMs, 0.5)),
  firstPreviewP99Ms: round(percentile(firstPreviewMs, 0.99)),
  messagesWithPreview: firstPreviewMs.length,
  previewEditsPerMessagePerMinute: round(progressShownMs > 0 ? (progressEdits * 60_000) / progressShownMs : 0),
  maxEditsPerMessagePer5s: maxEditsPer5s,
  rateLimited,
  eventLoopDelayP99Ms: round(loopDelay.percentile(99) / 1e6),
  eventLoopDelayMaxMs: round(loopDelay.max / 1e6),
  machine: machineDescription(),
  date: new Date().toISOString().slice(0, 10),
};
await appendBenchmarkRow('chat', figures);
process.stdout.write(values.json ? `${JSON.stringify(figures)}\n` : `${JSON.stringify(figures, null, 2)}\n`);
