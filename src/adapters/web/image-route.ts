/**
 * `/images/<key>` reads straight from the image store, so the key is checked here before the service sees it: the
 * store's keys are relative paths of plain names, and nothing else may reach it from a URL.
 */

const KEY_SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/;
const MAX_KEY_CHARS = 512;

/** The image key a raw request path names, or null if it is not a safe key (`..`, `%2f`, dot-files, odd bytes). */
export function imageKeyOfPath(rawPath: string): string | null {
  if (!rawPath.startsWith('/images/')) return null;
  const segments: string[] = [];
  for (const raw of rawPath.slice('/images/'.length).split('/')) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return null;
    }
    if (!KEY_SEGMENT.test(segment)) return null;
    segments.push(segment);
  }
  const key = segments.join('/');
  return key.length <= MAX_KEY_CHARS ? key : null;
}

/** Content type from the bytes themselves: the store's keys usually end in .png or .webp, but need not. */
export function imageContentType(bytes: Buffer): string {
  if (bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  if (bytes.subarray(0, 4).toString('latin1') === 'RIFF' && bytes.subarray(8, 12).toString('latin1') === 'WEBP') return 'image/webp';
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  return 'application/octet-stream';
}
