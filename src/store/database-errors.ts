import { ImagineError } from '../core/errors.js';

/**
 * How a lost database looks from here: a socket error from pg, a server shutting down (SQLSTATE class 08, 57P0x), or
 * Prisma's wrappers of those (P1001/P1002/P1017, or a driver adapter error whose cause says so).
 */
const CONNECTION_ERROR_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'EPIPE', 'P1001', 'P1002', 'P1017']);
const CONNECTION_ADAPTER_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TlsConnectionError']);

export function isDatabaseUnreachable(error: unknown): boolean {
  const seen = new Set<unknown>();
  const pending: unknown[] = [error];
  while (pending.length > 0) {
    const current = pending.pop();
    if (!current || typeof current !== 'object' || seen.has(current)) continue;
    seen.add(current);
    const record = current as Record<string, unknown>;
    const code = typeof record.code === 'string' ? record.code : typeof record.originalCode === 'string' ? record.originalCode : '';
    if (CONNECTION_ERROR_CODES.has(code) || code.startsWith('08') || /^57P0[123]$/.test(code)) return true;
    if (typeof record.kind === 'string' && CONNECTION_ADAPTER_KINDS.has(record.kind)) return true;
    if (record.message === 'Connection terminated unexpectedly') return true;
    pending.push(record.cause, record.meta, record.driverAdapterError, ...(Array.isArray(record.errors) ? record.errors : []));
  }
  return false;
}

export function isUniqueViolation(error: unknown): boolean {
  const seen = new Set<unknown>();
  const pending: unknown[] = [error];
  while (pending.length > 0) {
    const current = pending.pop();
    if (!current || typeof current !== 'object' || seen.has(current)) continue;
    seen.add(current);
    const record = current as Record<string, unknown>;
    if (record.code === 'P2002' || record.code === '23505' || record.originalCode === '23505') return true;
    if (record.kind === 'UniqueConstraintViolation') return true;
    pending.push(record.cause, record.meta, record.driverAdapterError);
  }
  return false;
}

export const databaseUnavailable = (cause: unknown) =>
  new ImagineError('transient', 'the database is unavailable, try again shortly', {}, { cause });

/** Runs one store operation, turning a lost database into the transient error workers retry and adapters show. */
export async function guardDatabase<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (isDatabaseUnreachable(error)) throw databaseUnavailable(error);
    throw error;
  }
}
