/**
 * Reading a prefix of the model bucket back (capture records; what the local service's start takes up): list keys
 * or folders in key order, read a byte range of an object. The S3 adapter is `adapters/s3-blob-store.ts`
 * (ListObjects, ranged GetObject).
 */

/** One page of the objects under a prefix, in key (UTF-8 binary) order. */
export interface ObjectListing {
  readonly objects: readonly { readonly key: string; readonly sizeBytes: number }[];
  /** More keys follow the last one. */
  readonly truncated: boolean;
}

/** One page of the folders directly under a prefix (the names between it and the next `/`), in key order. */
export interface FolderListing {
  readonly folders: readonly string[];
  /** More keys follow the last one listed. */
  readonly truncated: boolean;
  /** Where the next page starts (its `startAfter`) when `truncated`. */
  readonly next?: string;
}

export interface ObjectReader {
  /** Keys under `prefix` that sort after `startAfter` (exclusive), at most `maxKeys` (S3: 1000) of them. */
  list(prefix: string, opts?: { startAfter?: string; maxKeys?: number }): Promise<ObjectListing>;

  /**
   * Bytes `[start, end)` of the object (a ranged GET): fewer when the object ends first, none from its end on;
   * undefined when it does not exist (any more).
   */
  getRange(key: string, start: number, end: number): Promise<Uint8Array | undefined>;
}

/** The folders of a prefix (what the local service's start looks through: functions/local/resume.ts). */
export interface FolderReader {
  /**
   * The folders directly under `prefix` (a listing with the delimiter `/`) after `startAfter`, a page of at most
   * `maxKeys` (S3: 1000) folders and keys.
   */
  folders(prefix: string, opts?: { startAfter?: string; maxKeys?: number }): Promise<FolderListing>;
}
