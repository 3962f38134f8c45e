import type { Platform } from '../generation.js';
import type { ChatConfig } from './chat-config.js';

/** What the adapter learned about the person from the platform, fresh for this very request. */
export interface AdminFacts {
  platform: Platform;
  /** The platform's own user id: a Discord user id, a Slack member id, the web chat's session user id. */
  userId: string;
  /** Discord: the member's role ids. */
  roleIds?: readonly string[];
  /** Discord: the member holds the Manage Server permission in this guild. */
  canManageServer?: boolean;
  /** Slack: the member is a workspace admin or owner. */
  isWorkspaceAdmin?: boolean;
  /** Web chat: the session proved it knows the configured admin token. */
  heldAdminToken?: boolean;
}

/** How a user is named in the admin list: ids are only unique within one platform, so `discord:…`, `slack:…`, `web:…`. */
export const adminListEntry = (platform: Platform, userId: string): string => `${platform}:${userId}`;

/** Evaluated on every admin command and every ❌ by someone else; never cached, so a removed role stops working at once. */
export function isChatAdmin(facts: AdminFacts, admins: ChatConfig['admins']): boolean {
  return (
    facts.canManageServer === true ||
    facts.isWorkspaceAdmin === true ||
    facts.heldAdminToken === true ||
    admins.userIds.includes(adminListEntry(facts.platform, facts.userId)) ||
    (facts.platform === 'discord' && (facts.roleIds ?? []).some((roleId) => admins.discordRoleIds.includes(roleId)))
  );
}
