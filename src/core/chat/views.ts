import type { ImagineError } from '../errors.js';
import type { GenerationParams, GenerationRequest } from '../generation.js';
import type { GenerationResult } from '../ports.js';
import { resultSize, UPSCALE_FACTOR } from '../quota.js';
import { canUpscale, resultButtonRows, resultReactions } from './result-actions.js';
import type { GenerationEvent, GenerationRecord, QuotaStatus, QueuePlacement } from './service.js';

/**
 * What the bot shows, as plain data. Adapters render a view into a Discord message or Slack blocks; nothing here knows
 * either platform, so both say the same things.
 */

export interface ImageAttachment {
  /** Image store key; the adapter reads the bytes through the service. */
  key: string;
  fileName: string;
}

export interface ActionButton {
  label: string;
  emoji?: string;
  customId: string;
  style: 'primary' | 'secondary' | 'danger';
}

export interface ChatView {
  text: string;
  images: ImageAttachment[];
  buttonRows: ActionButton[][];
  /** Reactions the bot adds to its own message to offer emoji actions. */
  reactions: string[];
  /** Visible only to the person who asked. */
  ephemeral: boolean;
}

const view = (text: string, extra: Partial<ChatView> = {}): ChatView => ({
  text,
  images: [],
  buttonRows: [],
  reactions: [],
  ephemeral: false,
  ...extra,
});

export const textView = (text: string, ephemeral = true): ChatView => view(text, { ephemeral });

/** "12.5 of 100 units left." — units are docs/QUOTA.md's (one 512×512 step each), shown to one decimal. */
export function describeQuota(quota: QuotaStatus): string {
  if (quota.limitUnits === null || quota.remainingUnits === null) return 'no quota limit.';
  const units = (value: number) => (Math.round(value * 10) / 10).toString();
  return `${units(quota.remainingUnits)} of ${units(quota.limitUnits)} units left.`;
}

export function errorView(error: ImagineError): ChatView {
  return view(`⚠️ ${error.userMessage}`, { ephemeral: true });
}

/** The private answer to a click on a button whose id is unknown, tampered with or stale, on every platform. */
export const invalidButtonView = (): ChatView => textView('⚠️ This button is no longer valid.');

export function formatWait(etaMs: number): string {
  const seconds = Math.max(1, Math.round(etaMs / 1000));
  return seconds < 90 ? `about ${seconds} s` : `about ${Math.round(seconds / 60)} min`;
}

const quoted = (params: GenerationParams) => `“${params.prompt.length > 180 ? `${params.prompt.slice(0, 177)}…` : params.prompt}”`;

export function acceptedView(request: GenerationRequest, placement: QueuePlacement): ChatView {
  const where = placement.position <= 0 ? 'starting now' : `position ${placement.position} in the queue`;
  return view(`🎨 ${quoted(request.params)} — ${where}, ready in ${formatWait(placement.etaMs)}.`);
}

export function progressView(request: GenerationRequest, step: number, totalSteps: number, previewKey?: string): ChatView {
  const images = previewKey ? [{ key: previewKey, fileName: 'preview.webp' }] : [];
  return view(`🎨 ${quoted(request.params)} — step ${step}/${totalSteps}`, { images });
}

export function doneView(request: GenerationRequest, result: GenerationResult): ChatView {
  const { params } = request;
  const batch = result.imageKeys.length;
  const shown = result.gridKey ?? result.imageKeys[0];
  const warnings = (result.warnings ?? []).map((warning) => `\n⚠️ ${warning}`).join('');
  return view(`${quoted(params)} — ${sizeLabel(request)}, seed ${result.seeds[0] ?? params.seed}${warnings}`, {
    images: shown ? [{ key: shown, fileName: `${request.generationId}.png` }] : [],
    buttonRows: resultButtonRows(request.generationId, batch, request.kind, canUpscale(request)),
    reactions: resultReactions(batch, canUpscale(request)),
  });
}

/** The real size of a request's pictures, and how it came about when an upscale made it. */
function sizeLabel(request: Pick<GenerationRequest, 'kind' | 'params'>): string {
  const { width, height } = resultSize(request);
  const made = `${request.params.width}×${request.params.height}`;
  if (request.kind === 'upscale') return `upscaled ${width}×${height} (4× of ${made})`;
  const passes = request.params.upscalePasses ?? 0;
  return passes > 0 ? `${width}×${height} (varied at ${made}, upscaled ${UPSCALE_FACTOR ** passes}×)` : `${width}×${height}`;
}

export function failedView(request: GenerationRequest, userMessage: string, refunded: boolean): ChatView {
  const refund = refunded ? ' Your quota was refunded.' : '';
  const sentence = /[.!?]$/.test(userMessage) ? userMessage : `${userMessage}.`;
  return view(`⚠️ ${quoted(request.params)} failed: ${sentence}${refund}`);
}

export function cancelledView(request: GenerationRequest, refunded: boolean): ChatView {
  return view(`🚫 ${quoted(request.params)} was cancelled.${refunded ? ' Your quota was refunded.' : ''}`);
}

/** Everything needed to make the image again, for ✉️ and /info. */
export function parametersView(record: GenerationRecord, ephemeral = true): ChatView {
  const { params, generationId, kind, parent, maskKey, blendParents } = record.request;
  const seeds = record.result?.seeds.join(', ') ?? String(params.seed);
  const edit = [
    params.zoomOut !== undefined ? `zoom out ${params.zoomOut}×` : undefined,
    params.pan ? `pan ${params.pan}` : undefined,
    params.region ? `vary region ${params.region}` : undefined,
    maskKey ? 'vary region (painted mask)' : undefined,
  ].filter((part) => part !== undefined);
  const lines = [
    `Prompt: ${params.prompt}`,
    params.negativePrompt ? `Negative prompt: ${params.negativePrompt}` : undefined,
    `Seed: ${seeds}`,
    `Size: ${sizeLabel(record.request)}, steps: ${params.steps}, cfg: ${params.guidance}, sampler: ${params.sampler}`,
    `Model: ${params.model}, batch: ${params.batch}, kind: ${kind}, status: ${record.status}`,
    edit.length > 0 ? `Edit: ${edit.join(', ')}` : undefined,
    blendParents
      ? `Blend of: ${blendParents.map((picture) => picture.generationId).join(', ')}`
      : parent
        ? `Parent: ${parent.generationId}, image ${parent.imageIndex + 1}`
        : undefined,
    record.result?.maskKey ? `Mask: ${record.result.maskKey}` : undefined,
    `Generation: ${generationId}`,
  ];
  return view(lines.filter((line) => line !== undefined).join('\n'), { ephemeral });
}

/**
 * The view a generation event turns its message into, or null for a progress event that arrived after the generation
 * finished (events travel separately from status; a late step must not overwrite the result).
 */
export function viewOfEvent(event: GenerationEvent, record: GenerationRecord): ChatView | null {
  const { request } = record;
  switch (event.type) {
    case 'progress':
      return record.status === 'queued' || record.status === 'running'
        ? progressView(request, event.step, event.totalSteps, event.previewKey)
        : null;
    case 'succeeded':
      return doneView(request, event.result);
    case 'failed':
      return failedView(request, event.userMessage, event.refunded);
    case 'cancelled':
      return cancelledView(request, event.refunded);
  }
}
