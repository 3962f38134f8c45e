import type { WebMessage } from './protocol.js';

export interface TranscriptEntry {
  message: WebMessage;
  /** The generation this message shows, once known (from its first event, or from the action that opened it). */
  generationId?: string;
  /**
   * Who wrote the message last. Events and a command's answer race: a worker may report step 1 before `submit`
   * returns the queue position, and a progress event read from the store late may arrive after the result.
   */
  stage: 'open' | 'answered' | 'progress' | 'final';
  lastStep: number;
}

/**
 * The recent conversation of each local user, kept in memory so a reload shows it again. Bounded both ways: the oldest
 * messages of a user, and the least recently active users, are forgotten.
 */
export class Transcripts {
  private readonly byUser = new Map<string, TranscriptEntry[]>();

  constructor(
    private readonly maxMessagesPerUser: number,
    private readonly maxUsers: number,
  ) {}

  messages(userId: string): WebMessage[] {
    return (this.byUser.get(userId) ?? []).map((entry) => entry.message);
  }

  find(userId: string, messageId: string): TranscriptEntry | undefined {
    return this.byUser.get(userId)?.find((entry) => entry.message.id === messageId);
  }

  append(userId: string, message: WebMessage, generationId?: string): TranscriptEntry {
    const entries = this.touch(userId);
    const entry: TranscriptEntry = { message, generationId, stage: 'open', lastStep: 0 };
    entries.push(entry);
    if (entries.length > this.maxMessagesPerUser) entries.splice(0, entries.length - this.maxMessagesPerUser);
    return entry;
  }

  /** Puts back a user's stored conversation (after a restart), replacing whatever is held for them. */
  restore(userId: string, entries: TranscriptEntry[]): void {
    const held = this.touch(userId);
    held.splice(0, held.length, ...entries.slice(-this.maxMessagesPerUser));
  }

  forget(userId: string): void {
    this.byUser.delete(userId);
  }

  remove(userId: string, messageId: string): boolean {
    const entries = this.byUser.get(userId) ?? [];
    const index = entries.findIndex((entry) => entry.message.id === messageId);
    if (index < 0) return false;
    entries.splice(index, 1);
    return true;
  }

  private touch(userId: string): TranscriptEntry[] {
    const entries = this.byUser.get(userId) ?? [];
    this.byUser.delete(userId);
    this.byUser.set(userId, entries);
    if (this.byUser.size > this.maxUsers) this.byUser.delete(this.byUser.keys().next().value!);
    return entries;
  }
}
