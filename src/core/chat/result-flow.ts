import { isImagineError } from '../errors.js';
import { GenerationRequest, type Requester } from '../generation.js';
import type { ChatConfig } from './chat-config.js';
import type { RegionForm, RegionSubmission } from './edits.js';
import { planRegionEdit, planResultAction, type GenerationDraft, type ResultAction } from './result-actions.js';
import type { ImagineService } from './service.js';
import { acceptedView, errorView, parametersView, textView, type ChatView } from './views.js';

/**
 * What happens when someone clicks a result's button, reacts to it, or answers its Vary (Region) form — written once.
 * Each adapter lends a small port for the one message acted on: post beside it, remove it, DM, tell privately, open a
 * form; it only maps its platform's events in and these calls out.
 */

/** A message opened for a new generation; its replyTarget goes into the request. */
export interface OpenedMessage {
  replyTarget: string;
  show(view: ChatView): Promise<void>;
  remove(): Promise<void>;
}

export interface ResultActionPort {
  /** Posts a public message beside the result acted on, where the new generation will be shown. */
  openGenerationMessage(placeholder: ChatView, generationId: string): Promise<OpenedMessage>;
  /** Deletes the result's own message. */
  removeResultMessage(): Promise<void>;
  /** Sends the actor a private message (a DM where the platform has them). */
  directMessage(view: ChatView): Promise<void>;
  /** Answers the actor privately about this action (an error). */
  tell(view: ChatView): Promise<void>;
  /** Shows the actor the Vary (Region) form for this result. */
  openForm(form: RegionForm): Promise<void>;
}

export interface ResultFlowDependencies {
  service: ImagineService;
  config: ChatConfig;
}

export async function performResultAction(action: ResultAction, actor: Requester, deps: ResultFlowDependencies, port: ResultActionPort): Promise<void> {
  await tellingErrors(port, async () => {
    const plan = await planResultAction(action, actor, deps.service, deps.config);
    switch (plan.type) {
      case 'dm':
        return port.directMessage(parametersView(plan.record, false));
      case 'delete':
        return port.removeResultMessage();
      case 'form':
        return port.openForm(plan.form);
      case 'generate':
        return submitDraft(plan.draft, deps.service, port);
    }
  });
}

/** A Vary (Region) form's answer: checked, its painted mask stored, then queued and charged like any generation. */
export async function submitRegionForm(
  formId: string,
  submission: RegionSubmission,
  actor: Requester,
  deps: ResultFlowDependencies,
  port: ResultActionPort,
): Promise<void> {
  await tellingErrors(port, async () => {
    const plan = await planRegionEdit(formId, submission, actor, deps.service, deps.config);
    const maskKey = plan.maskPng ? await deps.service.storeDrawnMask(plan.draft.generationId, plan.maskPng) : undefined;
    await submitDraft({ ...plan.draft, ...(maskKey && { maskKey }) }, deps.service, port);
  });
}

async function submitDraft(draft: GenerationDraft, service: ImagineService, port: ResultActionPort): Promise<void> {
  const message = await port.openGenerationMessage(textView(`🎨 ${draft.kind}…`, false), draft.generationId);
  const request = GenerationRequest.parse({ ...draft, replyTarget: message.replyTarget });
  const placement = await service.submit(request).catch(async (error: unknown) => {
    await message.remove();
    throw error;
  });
  await message.show(acceptedView(request, placement));
}

async function tellingErrors(port: ResultActionPort, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (error) {
    if (!isImagineError(error)) throw error;
    await port.tell(errorView(error));
  }
}
