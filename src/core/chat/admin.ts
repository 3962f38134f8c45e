import type { ChatConfig } from './chat-config.js';

/** What the adapter learned about the person from the platform, fresh for this very request. */
export interface AdminFacts {
  userId: string;
  /** Discord: the member's role ids. */
  roleIds?: readonly string[];
  /** Discord: the member holds the Manage Server permission in this guild. */
  canManageServer?: boolean;
  /** Slack: the member is a workspace admin or owner. */
  isWorkspaceAdmin?: boolean;
}

/** Evaluated on every admin command and every ❌ by someone else; never cached, so a removed role stops working at once. */
export function isChatAdmin(facts: AdminFacts, admins: ChatConfig['admins']): boolean {
  return (
    facts.canManageServer === true ||
    facts.isWorkspaceAdmin === true ||
    admins.userIds.includes(facts.userId) ||
    (facts.roleIds ?? []).some((roleId) => admins.discordRoleIds.includes(roleId))
  );
}
