import { randomInt, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ImagineError, invalidInput } from '../errors.js';
import type { GenerationKind, GenerationRequest, Requester } from '../generation.js';
import { LIMITS, MAX_SEED, type PanDirection } from '../../engine/limits.js';
import { resultSize, UPSCALE_FACTOR } from '../quota.js';
import type { ChatConfig } from './chat-config.js';
import { checkRegionSubmission, EDITABLE_KINDS, editParams, pictureSize, regionForm, type ChatEdit, type RegionForm, type RegionSubmission } from './edits.js';
import type { ActionButton } from './views.js';
import type { GenerationRecord, ImagineService } from './service.js';

/**
 * What a user can do to a finished result, by button or by reaction. Button ids carry everything needed (action,
 * generation id, image index), so a click works after a restart without any state in the bot.
 */

export const RESULT_ACTIONS = [
  'upscale',
  'vary-subtle',
  'vary-strong',
  'reroll',
  'dm',
  'delete',
  'vary-region',
  'zoom-out-2',
  'zoom-out-1.5',
  'pan-left',
  'pan-right',
  'pan-up',
  'pan-down',
] as const;
export type ResultActionName = (typeof RESULT_ACTIONS)[number];

export const ResultAction = z.object({
  action: z.enum(RESULT_ACTIONS),
  generationId: z.string().regex(/^[A-Za-z0-9_-]{8,64}$/),
  imageIndex: z.number().int().min(0).max(3),
});
export type ResultAction = z.infer<typeof ResultAction>;

const ID_PREFIX = 'ib1';

/** Matches button ids of the result actions; Slack routes every other action id to the "no longer valid" answer. */
export const RESULT_ACTION_ID = /^ib1:/;

/** At most 4 + 12 + 64 + 2 = 82 characters, under Discord's 100 and Slack's 255. */
export function encodeActionId(action: ResultAction): string {
  return [ID_PREFIX, action.action, action.generationId, action.imageIndex].join(':');
}

/** The action a button id names, or null for ids this bot did not make. */
export function parseActionId(customId: string): ResultAction | null {
  const [prefix, action, generationId, imageIndex, ...rest] = customId.split(':');
  if (prefix !== ID_PREFIX || rest.length > 0 || !/^\d$/.test(imageIndex ?? '')) return null;
  const parsed = ResultAction.safeParse({ action, generationId, imageIndex: Number(imageIndex) });
  return parsed.success ? parsed.data : null;
}

/**
 * The action a click asks for, or null when the click must be answered "this button is no longer valid": an id this
 * bot did not make, one tampered with, or one naming another generation than the message it sits on. The adapter
 * reads `shownGenerationId` from the platform's own copy of the clicked message (Discord's message components,
 * Slack's message blocks, the web transcript), never from the click, so a crafted id cannot act on one generation
 * while the check and the deletion look at another.
 */
export function actionOfClick(customId: string, shownGenerationId: string | null | undefined): ResultAction | null {
  const action = parseActionId(customId);
  return action && shownGenerationId && action.generationId === shownGenerationId ? action : null;
}

/** Emoji actions; `slackName` is how Slack names the same emoji in `reaction_added`. */
export const REACTION_ACTIONS = [
  { emoji: '🔍', slackName: 'mag', action: 'upscale', singleImageOnly: true },
  { emoji: '🔀', slackName: 'twisted_rightwards_arrows', action: 'vary-subtle', singleImageOnly: true },
  { emoji: '🔄', slackName: 'arrows_counterclockwise', action: 'reroll', singleImageOnly: false },
  { emoji: '🔁', slackName: 'repeat', action: 'reroll', singleImageOnly: false },
  { emoji: '✉️', slackName: 'envelope', action: 'dm', singleImageOnly: false },
  { emoji: '❌', slackName: 'x', action: 'delete', singleImageOnly: false },
] as const satisfies readonly { emoji: string; slackName: string; action: ResultActionName; singleImageOnly: boolean }[];

// Clients send some emoji with and some without the VS16 presentation selector (✉ vs ✉️).
const withoutVariationSelector = (emoji: string) => emoji.replace(/\uFE0F/g, '');

/** The action an emoji (unicode, or Slack's name for it) asks for on a result, or null if it is not one of ours. */
export function actionForReaction(emojiOrSlackName: string, generationId: string): ResultAction | null {
  const key = withoutVariationSelector(emojiOrSlackName);
  const entry = REACTION_ACTIONS.find((candidate) => withoutVariationSelector(candidate.emoji) === key || candidate.slackName === key);
  return entry ? { action: entry.action, generationId, imageIndex: 0 } : null;
}

export function resultReactions(batch: number, canUpscale = true): string[] {
  const offered = REACTION_ACTIONS.filter((entry) => (batch === 1 || !entry.singleImageOnly) && (canUpscale || entry.action !== 'upscale')).map(
    (entry) => entry.emoji,
  );
  return offered.filter((emoji, index) => offered.indexOf(emoji) === index && emoji !== '🔁');
}

/** Buttons that edit a single finished picture, and what each asks for (Vary (Region) asks through a form). */
const EDIT_ACTIONS: Partial<Record<ResultActionName, Exclude<ChatEdit, { kind: 'vary-region' }>>> = {
  'zoom-out-2': { kind: 'zoom-out', factor: 2 },
  'zoom-out-1.5': { kind: 'zoom-out', factor: 1.5 },
  'pan-left': { kind: 'pan', direction: 'left' },
  'pan-right': { kind: 'pan', direction: 'right' },
  'pan-up': { kind: 'pan', direction: 'up' },
  'pan-down': { kind: 'pan', direction: 'down' },
};

const PAN_BUTTONS: [ResultActionName, string, PanDirection][] = [
  ['pan-left', '⬅️', 'left'],
  ['pan-right', '➡️', 'right'],
  ['pan-up', '⬆️', 'up'],
  ['pan-down', '⬇️', 'down'],
];

/** Whether an upscale of this result stays within the largest side the engine makes (no button that cannot work). */
export function canUpscale(request: Pick<GenerationRequest, 'kind' | 'params'>): boolean {
  const { width, height } = resultSize(request);
  return Math.max(width, height) * UPSCALE_FACTOR <= LIMITS.sidePx.max;
}

export function resultButtonRows(generationId: string, batch: number, kind: GenerationKind = 'imagine', upscalable = true): ActionButton[][] {
  const button = (label: string, action: ResultActionName, imageIndex: number, style: ActionButton['style'] = 'secondary', emoji?: string): ActionButton => ({
    label,
    emoji,
    style,
    customId: encodeActionId({ action, generationId, imageIndex }),
  });
  const indexes = Array.from({ length: batch }, (_, k) => k);
  const common = [
    button('Reroll', 'reroll', 0, 'secondary', '🔄'),
    button('DM me the parameters', 'dm', 0, 'secondary', '✉️'),
    button('Delete', 'delete', 0, 'danger', '❌'),
  ];
  if (batch === 1) {
    const upscale = upscalable ? [button('Upscale', 'upscale', 0, 'primary', '🔍')] : [];
    const variations = [...upscale, button('Vary (subtle)', 'vary-subtle', 0, 'secondary', '🔀'), button('Vary (strong)', 'vary-strong', 0)];
    if (!EDITABLE_KINDS.includes(kind)) return [variations, common];
    const edits = [
      button('Vary (Region)', 'vary-region', 0, 'primary', '🖌️'),
      button('Zoom Out 2×', 'zoom-out-2', 0, 'secondary', '🔍'),
      button('Zoom Out 1.5×', 'zoom-out-1.5', 0),
    ];
    const pans = PAN_BUTTONS.map(([action, emoji, direction]) => button(`Pan ${direction}`, action, 0, 'secondary', emoji));
    return [variations, edits, pans, common];
  }
  return [
    indexes.map((k) => button(`U${k + 1}`, 'upscale', k, 'primary')),
    indexes.map((k) => button(`V${k + 1}`, 'vary-subtle', k)),
    common,
  ];
}

/** A request the adapter completes with the `replyTarget` of the message it opens for it. */
export type GenerationDraft = Omit<GenerationRequest, 'replyTarget'>;

export type ActionPlan =
  | { type: 'generate'; draft: GenerationDraft }
  | { type: 'dm'; record: GenerationRecord }
  | { type: 'delete'; record: GenerationRecord }
  /** Vary (Region): ask where to repaint first; the form's answer goes to planRegionEdit. */
  | { type: 'form'; form: RegionForm };

const KIND_OF_ACTION: Partial<Record<ResultActionName, GenerationKind>> = {
  upscale: 'upscale',
  'vary-subtle': 'vary-subtle',
  'vary-strong': 'vary-strong',
  reroll: 'reroll',
  'vary-region': 'vary-region',
  'zoom-out-2': 'zoom-out',
  'zoom-out-1.5': 'zoom-out',
  'pan-left': 'pan',
  'pan-right': 'pan',
  'pan-up': 'pan',
  'pan-down': 'pan',
};

export const newGenerationId = (): string => randomUUID();

/**
 * Decides what an action means for this actor: a new generation (charged to whoever clicked), a DM of the
 * parameters, or deleting the message (the requester or an admin only).
 */
export async function planResultAction(
  action: ResultAction,
  actor: Requester,
  service: ImagineService,
  config: ChatConfig,
  randomSeed: () => number = () => randomInt(0, MAX_SEED + 1),
): Promise<ActionPlan> {
  const record = await findResult(action, service);
  if (action.action === 'dm') return { type: 'dm', record };
  if (action.action === 'delete') {
    const owner = record.request.requester;
    if ((owner.platform !== actor.platform || owner.userId !== actor.userId) && !actor.isAdmin) {
      throw new ImagineError('forbidden', 'Only the person who asked for this image, or an admin, can delete it.');
    }
    // What ❌ does is decided here, once for every platform: the pictures leave the store; the adapter removes the message.
    await service.deleteGeneration(record.request.generationId);
    return { type: 'delete', record };
  }
  if (record.deletedAt) throw new ImagineError('not_found', 'That image was deleted.');
  const kind = KIND_OF_ACTION[action.action]!;
  if (REDRAWN_FROM_SOURCE.includes(kind) && record.request.kind === 'upscale') {
    // An upscale is the picture it came from, enlarged: varying or rerolling it works on that picture, at the size the
    // model makes (the enlarged size would come out as noise). A Vary then enlarges each variation as many times as the
    // upscale was, within its own job, so it comes back at the size the user was looking at.
    const { source, hops } = await sourceOfUpscale(record, service);
    const plan = await planResultAction({ ...action, generationId: source.generationId, imageIndex: source.imageIndex }, actor, service, config, randomSeed);
    if (plan.type !== 'generate' || kind === 'reroll') return plan;
    const upscalePasses = (plan.draft.params.upscalePasses ?? 0) + hops;
    return { type: 'generate', draft: { ...plan.draft, params: { ...plan.draft.params, upscalePasses } } };
  }
  const parent = record.request;
  if (kind !== 'reroll') checkFinishedImage(record, action.imageIndex);
  if (kind === 'vary-region') {
    checkOwner(record, actor);
    return { type: 'form', form: regionForm(encodeActionId(action), record, action.imageIndex) };
  }
  const edit = EDIT_ACTIONS[action.action];
  if (edit) return { type: 'generate', draft: editDraft(record, action, actor, editParams(record, edit, config, randomSeed())) };
  if (kind === 'upscale' && !canUpscale(parent)) {
    const { width, height } = resultSize(parent);
    throw new ImagineError('invalid_input', `${width}×${height} is as large as I make images: another 4× upscale would pass ${LIMITS.sidePx.max} pixels a side.`);
  }
  const parentSeed = record.result?.seeds[action.imageIndex] ?? parent.params.seed;
  // A Vary keeps the upscale passes of what it varies (it is varied at the model's size and enlarged again); an
  // upscale's params describe the finished picture it enlarges, and a reroll makes pictures at the model's size.
  const params =
    kind === 'upscale'
      ? { ...withoutUpscalePasses(parent.params), ...resultSize(parent), batch: 1, seed: parentSeed }
      : kind === 'reroll'
        ? { ...withoutUpscalePasses(parent.params), seed: randomSeed() }
        : { ...parent.params, seed: randomSeed() };
  return {
    type: 'generate',
    draft: {
      generationId: newGenerationId(),
      kind,
      params,
      requester: actor,
      mode: parent.mode,
      parent: { generationId: parent.generationId, imageIndex: action.imageIndex },
    },
  };
}

/** Actions that draw the picture anew from its prompt: on an upscale they go back to the picture it enlarged. */
const REDRAWN_FROM_SOURCE: readonly GenerationKind[] = ['vary-subtle', 'vary-strong', 'reroll'];

function withoutUpscalePasses(params: GenerationRequest['params']): GenerationRequest['params'] {
  const { upscalePasses: _passes, ...rest } = params;
  return rest;
}

/** The generated picture an upscale (or an upscale of an upscale) enlarges, and how many upscales lie between. */
async function sourceOfUpscale(
  record: GenerationRecord,
  service: ImagineService,
): Promise<{ source: { generationId: string; imageIndex: number }; hops: number }> {
  const gone = () => new ImagineError('not_found', 'The picture this upscale came from is gone, so there is nothing to vary; upscale it again from a new one.');
  let current = record;
  let source = current.request.parent;
  let hops = 1;
  while (source && current.request.kind === 'upscale') {
    const found = await service.findGeneration(source.generationId);
    if (!found) throw gone();
    current = found;
    if (current.request.kind !== 'upscale') return { source, hops };
    source = current.request.parent;
    hops += 1;
  }
  throw gone();
}

async function findResult(action: ResultAction, service: ImagineService): Promise<GenerationRecord> {
  const record = await service.findGeneration(action.generationId);
  if (!record) throw new ImagineError('not_found', 'That image is gone: it was deleted, or its owner asked to be forgotten.');
  return record;
}

function checkFinishedImage(record: GenerationRecord, imageIndex: number): void {
  if (record.deletedAt) throw new ImagineError('not_found', 'That image was deleted.');
  if (record.status !== 'succeeded') throw new ImagineError('invalid_input', 'That generation has no finished image to work on yet.');
  const imageCount = record.result?.imageKeys.length ?? record.request.params.batch;
  if (imageIndex >= imageCount) throw new ImagineError('invalid_input', `That result has ${imageCount} image(s); there is no image ${imageIndex + 1}.`);
}

function checkOwner(record: GenerationRecord, actor: Requester): void {
  if (record.request.requester.userId !== actor.userId || record.request.requester.platform !== actor.platform) {
    throw new ImagineError('forbidden', 'Only the person who asked for this picture can vary a region of it: upscale it yourself first, then vary your own copy.');
  }
}

function editDraft(record: GenerationRecord, action: ResultAction, actor: Requester, params: GenerationDraft['params']): GenerationDraft {
  return {
    generationId: newGenerationId(),
    kind: KIND_OF_ACTION[action.action]!,
    params,
    requester: actor,
    mode: record.request.mode,
    parent: { generationId: record.request.generationId, imageIndex: action.imageIndex },
  };
}

/** A Vary (Region) edit from a form's answer, and the painted mask to store before it is queued. */
export interface RegionEditPlan {
  draft: GenerationDraft;
  maskPng?: Buffer;
}

/**
 * Checks a Vary (Region) form's answer — the result still there and the submitter's own, a region inside the picture
 * or a painted mask that is neither empty nor full — and plans the edit. It throws before anything is stored or charged.
 */
export async function planRegionEdit(
  formId: string,
  submission: RegionSubmission,
  actor: Requester,
  service: ImagineService,
  config: ChatConfig,
  randomSeed: () => number = () => randomInt(0, MAX_SEED + 1),
): Promise<RegionEditPlan> {
  const action = parseActionId(formId);
  if (action?.action !== 'vary-region') throw invalidInput('That form is not one of mine any more; click 🖌️ Vary (Region) again.');
  const record = await findResult(action, service);
  checkFinishedImage(record, action.imageIndex);
  checkOwner(record, actor);
  const checked = checkRegionSubmission(submission, pictureSize(record));
  const params = editParams(record, { kind: 'vary-region', region: checked.region, prompt: checked.prompt }, config, randomSeed());
  return { draft: editDraft(record, action, actor, params), ...(checked.maskPng && { maskPng: checked.maskPng }) };
}
