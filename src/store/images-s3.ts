import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import type { ImageStore } from '../core/ports.js';

/**
 * Images in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2...): a key is the object key. A TTL is stored as object
 * metadata (`x-amz-meta-expires-at-ms`, ms since the epoch) and checked on every get, so an expired preview is gone for
 * readers at once on any server. Deleting the bytes is left to a bucket lifecycle rule on a prefix such as `previews/`,
 * which S3-compatible servers run themselves; this store lists only one generation's folder, when a user is erased.
 */
export interface S3ImageStoreOptions {
  /** e.g. http://127.0.0.1:9000 for MinIO; omit for AWS S3 itself. */
  endpoint?: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Path-style URLs (endpoint/bucket/key); default true when an endpoint is given, as most self-hosted servers need. */
  forcePathStyle?: boolean;
  now?: () => Date;
}

const EXPIRES_AT_METADATA = 'expires-at-ms';

/** S3 allows 1024 bytes of UTF-8 per key; our keys come from src/queue/job.ts, so anything else is a bug. */
function checkKey(key: string): void {
  if (key.length === 0 || Buffer.byteLength(key) > 1024 || key.startsWith('/')) {
    throw new Error(`image key ${JSON.stringify(key)} must be a non-empty relative key of at most 1024 bytes`);
  }
}

const isMissing = (error: unknown) =>
  error instanceof S3ServiceException && (error.name === 'NoSuchKey' || error.$metadata.httpStatusCode === 404);

export function createS3ImageStore(options: S3ImageStoreOptions): ImageStore {
  const now = options.now ?? (() => new Date());
  const { bucket } = options;
  const client = new S3Client({
    endpoint: options.endpoint,
    region: options.region,
    credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey },
    forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
    // The SDK's default CRC32 trailers on every upload are not understood by many S3-compatible servers; checksums
    // are still sent where the S3 API requires them.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });

  const remove = (key: string) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));

  return {
    async put(key, bytes, contentType, putOptions) {
      checkKey(key);
      const ttlSeconds = putOptions?.ttlSeconds;
      await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: bytes,
          ContentType: contentType,
          ContentLength: bytes.length,
          Metadata: ttlSeconds === undefined ? {} : { [EXPIRES_AT_METADATA]: String(now().getTime() + ttlSeconds * 1000) },
        }),
      );
    },

    async get(key) {
      checkKey(key);
      let object;
      try {
        object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      } catch (error) {
        if (isMissing(error)) return null;
        throw error;
      }
      const expiresAtMs = object.Metadata?.[EXPIRES_AT_METADATA];
      if (expiresAtMs !== undefined && Number(expiresAtMs) <= now().getTime()) {
        await object.Body?.transformToByteArray().catch(() => undefined);
        await remove(key);
        return null;
      }
      if (!object.Body) return Buffer.alloc(0);
      return Buffer.from(await object.Body.transformToByteArray());
    },

    async delete(key) {
      checkKey(key);
      await remove(key);
    },

    async deletePrefix(prefix) {
      checkKey(prefix);
      let continuationToken: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: continuationToken }));
        for (const object of page.Contents ?? []) if (object.Key) await remove(object.Key);
        continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (continuationToken);
    },
  };
}
