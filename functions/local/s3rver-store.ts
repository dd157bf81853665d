/**
 * s3rver's filesystem store with S3's atomic objects. The store writes an object in place (its content, then its
 * MD5, then its metadata, as three files) and answers a PUT of a Buffer before the content is on disk, so a GET of
 * a key being written reads the new length from the metadata and streams a file still being written: the answer
 * falls short of its `Content-Length`, and the reader waits until its idle timeout. S3 serves either the old or the
 * new object, never a mix. Here an object's content is written to a file of its own first and renamed into place,
 * and a key's reads (metadata, then the open of its content) and its swaps (rename, metadata), copies and deletes
 * take turns: a read opened before a swap keeps reading the content it opened.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** What of s3rver's `FilesystemStore` this replaces or calls (its API as of @20minutes/s3rver 4.0). */
interface StoredObject {
  readonly bucket: string;
  readonly key: string;
  readonly content: Buffer | NodeJS.ReadableStream;
  readonly metadata: Record<string, string>;
}
interface FilesystemStore {
  getResourcePath(bucket: string, key: string, resource: string): string;
  putContent(path: string, content: StoredObject['content']): Promise<[number, string]>;
  putMetadata(bucket: string, key: string, metadata: StoredObject['metadata'], md5?: string): Promise<void>;
  getObject(bucket: string, key: string, options?: unknown): Promise<unknown>;
  putObject(object: StoredObject): Promise<{ size: number; md5: string }>;
  copyObject(
    srcBucket: string,
    srcKey: string,
    destBucket: string,
    destKey: string,
    replacementMetadata?: unknown,
  ): Promise<unknown>;
  deleteObject(bucket: string, key: string): Promise<void>;
}
type StoreClass = new (rootDirectory: string) => FilesystemStore;

/** `work` runs once every earlier holder of any of `names` is done (all names are taken at once: no deadlock). */
function keyTurns(): <T>(names: readonly string[], work: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<void>>();
  return async (names, work) => {
    const unique = [...new Set(names)];
    let release = (): void => {};
    const held = new Promise<void>((done) => {
      release = done;
    });
    const before = unique.map((name) => tails.get(name));
    for (const name of unique) tails.set(name, held);
    await Promise.all(before);
    try {
      return await work();
    } finally {
      release();
      for (const name of unique) if (tails.get(name) === held) tails.delete(name);
    }
  };
}

/** A store over `rootDirectory` of `base`'s class (the store s3rver made) whose objects change atomically. */
export function atomicStore(base: StoreClass, rootDirectory: string): FilesystemStore {
  const turn = keyTurns();
  const id = (bucket: string, key: string): string => `${bucket}/${key}`;
  class AtomicStore extends base {
    override async putObject(object: StoredObject): Promise<{ size: number; md5: string }> {
      const path = this.getResourcePath(object.bucket, object.key, 'object');
      await mkdir(dirname(path), { recursive: true });
      // Not an object's name (those end with `._S3rver_object`): listings skip it.
      const staged = `${path}.${randomUUID()}.staged`;
      try {
        const { content } = object;
        let size: number;
        let md5: string;
        if (Buffer.isBuffer(content)) {
          await writeFile(staged, content);
          [size, md5] = [content.length, createHash('md5').update(content).digest('hex')];
        } else {
          [size, md5] = await this.putContent(staged, content);
        }
        return await turn([id(object.bucket, object.key)], async () => {
          await rename(staged, path);
          await this.putMetadata(object.bucket, object.key, object.metadata, md5);
          return { size, md5 };
        });
      } finally {
        await unlink(staged).catch(() => {});
      }
    }

    override getObject(bucket: string, key: string, options?: unknown): Promise<unknown> {
      return turn([id(bucket, key)], () => super.getObject(bucket, key, options));
    }

    override copyObject(
      srcBucket: string,
      srcKey: string,
      destBucket: string,
      destKey: string,
      replacementMetadata?: unknown,
    ): Promise<unknown> {
      return turn([id(srcBucket, srcKey), id(destBucket, destKey)], () =>
        super.copyObject(srcBucket, srcKey, destBucket, destKey, replacementMetadata),
      );
    }

    override deleteObject(bucket: string, key: string): Promise<void> {
      return turn([id(bucket, key)], () => super.deleteObject(bucket, key));
    }
  }
  return new AtomicStore(rootDirectory);
}
