import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Who a web chat visitor is, decided by the server alone. The server names each new visitor (`web-<32 hex>`) and
 * hands the name back in an HttpOnly cookie signed with its secret, so a page can neither choose nor change it, and a
 * script on the page cannot read it. Admin status is a second signed cookie, issued only to a session that presented
 * the configured admin token; it names the session's user and the token, so it cannot be moved to another user and
 * stops working when the token changes.
 */

export const SESSION_COOKIE = 'ib_session';
export const ADMIN_COOKIE = 'ib_admin';
const SESSION_VERSION = 'v1';
const WEB_USER_ID = /^web-[0-9a-f]{32}$/;
const SIGNATURE = /^[A-Za-z0-9_-]{43}$/;
/** A year: the session is the user's identity (their quota and history), not a login that should expire. */
const SESSION_MAX_AGE_S = 365 * 24 * 3600;

export interface WebSession {
  userId: string;
  /** The session showed the configured admin token (WEB_ADMIN_TOKEN). */
  heldAdminToken: boolean;
}

export interface SessionKeys {
  /** Signs the cookies; at least 32 bytes. Changing it signs everyone out (each gets a new identity). */
  secret: Buffer;
  /** The web chat's admin secret; undefined: nobody becomes admin through the page. */
  adminToken?: string;
}

const sign = (secret: Buffer, text: string) => createHmac('sha256', secret).update(text).digest('base64url');

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** The token compared by digest, so its length is not learnt from the comparison's time. */
function isAdminToken(keys: SessionKeys, candidate: string): boolean {
  if (keys.adminToken === undefined) return false;
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(candidate), digest(keys.adminToken));
}

const adminProof = (keys: SessionKeys, userId: string) =>
  sign(keys.secret, `${SESSION_VERSION}:admin:${userId}:${createHash('sha256').update(keys.adminToken ?? '').digest('hex')}`);

export function newWebUserId(): string {
  return `web-${randomBytes(16).toString('hex')}`;
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at <= 0) continue;
    const name = part.slice(0, at).trim();
    if (!cookies.has(name)) cookies.set(name, part.slice(at + 1).trim());
  }
  return cookies;
}

/** The session a request's cookies prove, or null when there is none or its signature is not ours. */
export function readSession(keys: SessionKeys, cookieHeader: string | undefined): WebSession | null {
  const cookies = parseCookies(cookieHeader);
  const [version, userId, signature, ...rest] = (cookies.get(SESSION_COOKIE) ?? '').split('.');
  if (version !== SESSION_VERSION || rest.length > 0 || !WEB_USER_ID.test(userId ?? '') || !SIGNATURE.test(signature ?? '')) return null;
  if (!sameText(signature, sign(keys.secret, `${SESSION_VERSION}:user:${userId}`))) return null;
  const proof = cookies.get(ADMIN_COOKIE);
  const heldAdminToken = keys.adminToken !== undefined && proof !== undefined && sameText(proof, adminProof(keys, userId));
  return { userId, heldAdminToken };
}

const cookie = (name: string, value: string, maxAgeS: number, secure: boolean) =>
  `${name}=${value}; Path=/; Max-Age=${maxAgeS}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;

/** The session cookie's value for a user id the server made (tests use it to fix the id of a screenshot). */
export const sessionValue = (keys: SessionKeys, userId: string): string =>
  `${SESSION_VERSION}.${userId}.${sign(keys.secret, `${SESSION_VERSION}:user:${userId}`)}`;

export function sessionCookie(keys: SessionKeys, userId: string, secure: boolean): string {
  return cookie(SESSION_COOKIE, sessionValue(keys, userId), SESSION_MAX_AGE_S, secure);
}

/** The admin cookie for this session's user, or null when the candidate is not the configured token. */
export function adminCookie(keys: SessionKeys, userId: string, candidateToken: string, secure: boolean): string | null {
  return isAdminToken(keys, candidateToken) ? cookie(ADMIN_COOKIE, adminProof(keys, userId), SESSION_MAX_AGE_S, secure) : null;
}

export function clearedAdminCookie(secure: boolean): string {
  return cookie(ADMIN_COOKIE, '', 0, secure);
}
