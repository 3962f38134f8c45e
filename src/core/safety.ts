import type { ImagineService } from './chat/service.js';
import { ImagineError } from './errors.js';
import type { GenerationRequest, Requester } from './generation.js';

/**
 * Abuse and safety rules that hold on every platform, because they sit in front of the ImagineService port rather than
 * in an adapter: a prompt blocklist and per-user / per-workspace command rate limits.
 */

/** Counts commands for one key in a fixed one-minute window; the store behind it (Redis) is the service's business. */
export interface RateLimiter {
  readonly commandsPerMinute: number;
  consume(key: string): Promise<RateDecision>;
}

export type RateDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

export interface SafetyPolicy {
  /** Words or phrases refused anywhere in a prompt, case-insensitively, as whole words. */
  blocklist: readonly string[];
  perUser: RateLimiter;
  perWorkspace: RateLimiter;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The first blocklist term the prompt contains, or undefined. "Whole word" means letters and digits may not touch the
 * term on either side, so `ass` does not block "class"; spaces inside a phrase match any run of whitespace.
 */
export function findBlockedTerm(prompt: string, blocklist: readonly string[]): string | undefined {
  for (const term of blocklist) {
    const words = term.trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) continue;
    const pattern = new RegExp(`(?<![\\p{L}\\p{N}_])${words.map(escapeRegExp).join('\\s+')}(?![\\p{L}\\p{N}_])`, 'iu');
    if (pattern.test(prompt)) return term.trim();
  }
  return undefined;
}

/** Refuses a request whose prompt holds a blocked term. The negative prompt is not checked: it steers away from a term. */
export function checkPrompt(request: GenerationRequest, blocklist: readonly string[]): void {
  const term = findBlockedTerm(request.params.prompt, blocklist);
  if (term !== undefined) {
    throw new ImagineError('invalid_input', `This prompt uses a blocked term ("${term}"); please rephrase it without it.`, { blockedTerm: term });
  }
}

const userKey = (requester: Requester) => `user:${requester.platform}:${requester.workspaceId}:${requester.userId}`;
const workspaceKey = (requester: Requester) => `workspace:${requester.platform}:${requester.workspaceId}`;

const retryAfterSeconds = (retryAfterMs: number) => Math.max(1, Math.ceil(retryAfterMs / 1000));

/**
 * Counts one command against the user's and then the workspace's limit. A refused user does not spend the workspace's
 * allowance, so one noisy member cannot lock the rest of a workspace out.
 */
export async function checkRateLimits(requester: Requester, policy: Pick<SafetyPolicy, 'perUser' | 'perWorkspace'>): Promise<void> {
  const user = await policy.perUser.consume(userKey(requester));
  if (!user.allowed) {
    throw new ImagineError(
      'busy',
      `slow down: you can run ${policy.perUser.commandsPerMinute} commands a minute; try again in ${retryAfterSeconds(user.retryAfterMs)} s`,
      { limit: 'user', retryAfterMs: user.retryAfterMs },
    );
  }
  const workspace = await policy.perWorkspace.consume(workspaceKey(requester));
  if (!workspace.allowed) {
    throw new ImagineError(
      'busy',
      `slow down: this workspace can run ${policy.perWorkspace.commandsPerMinute} commands a minute; try again in ${retryAfterSeconds(workspace.retryAfterMs)} s`,
      { limit: 'workspace', retryAfterMs: workspace.retryAfterMs },
    );
  }
}

/**
 * The service with the safety rules in front of `submit`: rate limits first (a refused prompt still counts as a
 * command, so hammering the blocklist is limited too), then the blocklist. Everything else passes through unchanged.
 */
export function withSafety<S extends ImagineService>(service: S, policy: SafetyPolicy): S {
  // Inheriting from the service (rather than copying it) keeps class-based services' prototype methods.
  const guarded = Object.create(service) as S;
  guarded.submit = async (request: GenerationRequest) => {
    await checkRateLimits(request.requester, policy);
    checkPrompt(request, policy.blocklist);
    return service.submit(request);
  };
  return guarded;
}
