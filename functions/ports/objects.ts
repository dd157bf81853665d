/**
 * Reading a prefix of the model bucket back (capture records): list keys in key order, read an object. The S3
 * adapter is `adapters/s3-blob-store.ts` (ListObjects, GetObject).
 */

/** One page of keys under a prefix, in key (UTF-8 binary) order. */
export interface ObjectListing {
  readonly keys: readonly string[];
  /** More keys follow the last one. */
  readonly truncated: boolean;
}

export interface ObjectReader {
  /** Keys under `prefix` that sort after `startAfter` (exclusive), at most `maxKeys` (S3: 1000) of them. */
  list(prefix: string, opts?: { startAfter?: string; maxKeys?: number }): Promise<ObjectListing>;
  /** The object's bytes, or undefined when it does not exist (any more). */
  get(key: string): Promise<Uint8Array | undefined>;
}
