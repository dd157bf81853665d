/**
 * RangedObjects over S3 against the suite's emulator (@20minutes/s3rver): ranged reads, listings across pages and
 * multipart uploads of copied and uploaded parts — what batch scoring partitions, streams and aggregates with.
 * The tests marked "emulator:" record what s3rver itself does where it differs from S3, so that a change of the
 * emulator shows up here first.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3BlobStore, S3RangedObjects } from '../../functions/adapters/s3-blob-store';
import { ObjectChangedError, S3_MIN_PART_BYTES } from '../../functions/ports/batch';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';

/** Deterministic, non-repeating-looking bytes (a line of text every 100 bytes). */
function text(size: number, seed = 0): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i + seed) % 100 === 99 ? 10 : 97 + ((i * 7 + seed) % 26);
  return out;
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<{ bytes: Buffer; count: number }> {
  const parts: Uint8Array[] = [];
  for await (const c of chunks) parts.push(c);
  return { bytes: Buffer.concat(parts), count: parts.length };
}

describe('S3RangedObjects (s3rver)', () => {
  let aws: TestAwsEnv;
  let objects: S3RangedObjects;
  let blobs: S3BlobStore;
  const small = text(1000, 3);
  const big = text(3 * 1024 * 1024 + 17, 5);

  beforeAll(async () => {
    aws = await createTestAwsEnv('ranged');
    objects = new S3RangedObjects(aws.s3, aws.bucket);
    blobs = new S3BlobStore(aws.s3, aws.bucket);
    await blobs.put('batch/j/small.jsonl', small, 'application/x-ndjson');
    await blobs.put('batch/j/big.jsonl', big, 'application/x-ndjson');
    await blobs.put('batch/j/empty.jsonl', new Uint8Array(), 'application/x-ndjson');
  });
  afterAll(() => aws.dispose());

  describe('getRange', () => {
    it('reads bytes [start, end) of an object', async () => {
      for (const [start, end] of [
        [0, 1],
        [0, 10],
        [1, 2],
        [99, 100],
        [250, 731],
        [0, 1000],
      ] as const) {
        const got = await objects.getRange('batch/j/small.jsonl', start, end);
        expect(Buffer.from(got!).equals(small.subarray(start, end)), `[${start}, ${end})`).toBe(true);
      }
    });

    it('cuts a range that runs past the end, and answers empty from the end on', async () => {
      expect(Buffer.from((await objects.getRange('batch/j/small.jsonl', 900, 5000))!)).toEqual(
        small.subarray(900),
      );
      expect((await objects.getRange('batch/j/small.jsonl', 999, 1001))!.byteLength).toBe(1);
      expect((await objects.getRange('batch/j/small.jsonl', 1000, 2000))!.byteLength).toBe(0);
      expect((await objects.getRange('batch/j/small.jsonl', 5000, 6000))!.byteLength).toBe(0);
      expect((await objects.getRange('batch/j/small.jsonl', 10, 10))!.byteLength).toBe(0);
    });

    it('answers undefined for a missing object, whatever the range', async () => {
      expect(await objects.getRange('batch/j/none.jsonl', 0, 10)).toBeUndefined();
      expect(await objects.getRange('batch/j/none.jsonl', 5, 5)).toBeUndefined();
    });

    it('reads a window of a large object', async () => {
      const start = 2 * 1024 * 1024 - 7;
      const got = await objects.getRange('batch/j/big.jsonl', start, start + 64 * 1024);
      expect(Buffer.from(got!).equals(big.subarray(start, start + 64 * 1024))).toBe(true);
    });

    it('emulator: answers a range past the end 416 InvalidRange, and bytes=0-0 with the whole object', async () => {
      const get = (Range: string) =>
        aws.s3.send(new GetObjectCommand({ Bucket: aws.bucket, Key: 'batch/j/small.jsonl', Range }));
      await expect(get('bytes=1000-1999')).rejects.toMatchObject({
        name: 'InvalidRange',
        $metadata: { httpStatusCode: 416 },
      });
      const past = await get('bytes=900-4999');
      expect(past.ContentRange).toBe('bytes 900-999/1000');
      expect((await past.Body!.transformToByteArray()).byteLength).toBe(100);
      // S3 answers one byte; s3rver reads an end of 0 as "no end". The adapter cuts what it is given.
      const first = await get('bytes=0-0');
      expect(first.ContentRange).toBe('bytes 0-999/1000');
      expect((await first.Body!.transformToByteArray()).byteLength).toBe(1000);
    });
  });

  describe('streamRange', () => {
    it('streams a range of a large object in several chunks, byte-exact', async () => {
      const start = 123_457;
      const end = big.byteLength - 1001;
      const { bytes, count } = await collect(objects.streamRange('batch/j/big.jsonl', start, end));
      expect(bytes.equals(big.subarray(start, end))).toBe(true);
      expect(count).toBeGreaterThan(1);
    });

    it('streams the whole object, a range past its end cut at the end, nothing past it', async () => {
      expect(
        (await collect(objects.streamRange('batch/j/big.jsonl', 0, big.byteLength))).bytes.equals(big),
      ).toBe(true);
      expect(
        (await collect(objects.streamRange('batch/j/small.jsonl', 990, 4000))).bytes.equals(
          small.subarray(990),
        ),
      ).toBe(true);
      expect((await collect(objects.streamRange('batch/j/small.jsonl', 1000, 4000))).bytes.byteLength).toBe(
        0,
      );
      expect((await collect(objects.streamRange('batch/j/small.jsonl', 0, 1))).bytes).toEqual(
        small.subarray(0, 1),
      );
    });

    it('lets a consumer stop early, and frees the connection (more than the pool holds)', async () => {
      for (let i = 0; i < 60; i++) {
        for await (const chunk of objects.streamRange('batch/j/big.jsonl', 0, big.byteLength)) {
          expect(chunk.byteLength).toBeGreaterThan(0);
          break;
        }
      }
      const got = await objects.getRange('batch/j/big.jsonl', 10, 20);
      expect(Buffer.from(got!).equals(big.subarray(10, 20))).toBe(true);
    });

    it('fails on a missing object with S3 NoSuchKey', async () => {
      await expect(collect(objects.streamRange('batch/j/none.jsonl', 0, 10))).rejects.toMatchObject({
        name: 'NoSuchKey',
      });
    });
  });

  describe('reads of the object an ETag names', () => {
    const key = 'batch/j/pinned.jsonl';
    const later = text(1000, 4);

    it('reads the object while it has the ETag, and fails with ObjectChangedError once it was written again', async () => {
      await blobs.put(key, small, 'application/x-ndjson');
      const eTag = (await blobs.head(key))?.eTag;
      if (!eTag) throw new Error('no ETag');
      expect(Buffer.from((await objects.getRange(key, 10, 500, eTag))!).equals(small.subarray(10, 500))).toBe(
        true,
      );
      expect(
        (await collect(objects.streamRange(key, 10, 500, eTag))).bytes.equals(small.subarray(10, 500)),
      ).toBe(true);
      await blobs.put(key, later, 'application/x-ndjson');
      const changed = { name: 'ObjectChangedError', key, expectedETag: eTag };
      await expect(objects.getRange(key, 10, 500, eTag)).rejects.toMatchObject(changed);
      await expect(objects.getRange(key, 10, 500, eTag)).rejects.toBeInstanceOf(ObjectChangedError);
      // More refused reads than the connection pool holds: each frees its connection.
      for (let i = 0; i < 60; i++) {
        await expect(collect(objects.streamRange(key, 0, 1000, eTag))).rejects.toMatchObject(changed);
      }
      // Without an ETag, and with the new one, the new bytes.
      expect(Buffer.from((await objects.getRange(key, 10, 500))!).equals(later.subarray(10, 500))).toBe(true);
      const now = (await blobs.head(key))?.eTag;
      expect(now).not.toBe(eTag);
      expect((await collect(objects.streamRange(key, 0, 1000, now))).bytes.equals(later)).toBe(true);
    });

    it('fails with ObjectChangedError when the object was written shorter than the range it named', async () => {
      const shorter = 'batch/j/shrunk.jsonl';
      await blobs.put(shorter, small, 'application/x-ndjson');
      const eTag = (await blobs.head(shorter))?.eTag;
      if (!eTag) throw new Error('no ETag');
      await blobs.put(shorter, small.subarray(0, 100), 'application/x-ndjson');
      // The range starts past the new end: the emulator answers 416 before it would look at If-Match.
      const changed = { name: 'ObjectChangedError', key: shorter, expectedETag: eTag };
      await expect(objects.getRange(shorter, 200, 500, eTag)).rejects.toMatchObject(changed);
      await expect(collect(objects.streamRange(shorter, 200, 500, eTag))).rejects.toMatchObject(changed);
      // Without an ETag the same range is simply empty.
      expect((await objects.getRange(shorter, 200, 500))!.byteLength).toBe(0);
      expect((await collect(objects.streamRange(shorter, 200, 500))).bytes.byteLength).toBe(0);
    });

    it('fails with ObjectChangedError (deleted) when the object it names is gone; without an ETag it is missing', async () => {
      const gone = 'batch/j/gone.jsonl';
      await blobs.put(gone, small, 'application/x-ndjson');
      const eTag = (await blobs.head(gone))?.eTag;
      if (!eTag) throw new Error('no ETag');
      await blobs.delete(gone);
      const deleted = { name: 'ObjectChangedError', key: gone, expectedETag: eTag, deleted: true };
      await expect(objects.getRange(gone, 0, 100, eTag)).rejects.toMatchObject(deleted);
      await expect(collect(objects.streamRange(gone, 0, 100, eTag))).rejects.toMatchObject(deleted);
      expect(await objects.getRange(gone, 0, 100)).toBeUndefined();
      await expect(collect(objects.streamRange(gone, 0, 100))).rejects.toMatchObject({ name: 'NoSuchKey' });
    });

    it('emulator: ignores If-Match on GET (the adapter checks the answer’s ETag as well)', async () => {
      await blobs.put(key, small, 'application/x-ndjson');
      const out = await aws.s3.send(
        new GetObjectCommand({ Bucket: aws.bucket, Key: key, Range: 'bytes=0-9', IfMatch: '"not-its-etag"' }),
      );
      expect(out.$metadata.httpStatusCode).toBe(206);
      expect((await out.Body!.transformToByteArray()).byteLength).toBe(10);
    });
  });

  describe('putNew (a write only where no object is)', () => {
    it('writes an object where none is', async () => {
      const key = 'batch/new/job.json';
      expect(await blobs.putNew(key, '{"model":"m"}')).toBe(true);
      expect(Buffer.from((await blobs.get(key))!).toString()).toBe('{"model":"m"}');
    });

    it('emulator: ignores If-None-Match on PUT and writes over the object (S3 answers 412)', async () => {
      const key = 'batch/new/again.json';
      await blobs.put(key, 'first');
      expect(await blobs.putNew(key, 'second')).toBe(true);
      expect(Buffer.from((await blobs.get(key))!).toString()).toBe('second');
    });

    it('answers false for S3’s 412 (an object is there) and 409 (a conditional write of it in progress)', async () => {
      const failing = (name: string, httpStatusCode: number) =>
        new S3BlobStore(
          {
            send: async () => {
              throw Object.assign(new Error(name), { name, $metadata: { httpStatusCode } });
            },
          } as unknown as S3Client,
          'b',
        );
      expect(await failing('PreconditionFailed', 412).putNew('k', 'x')).toBe(false);
      expect(await failing('ConditionalRequestConflict', 409).putNew('k', 'x')).toBe(false);
      await expect(failing('AccessDenied', 403).putNew('k', 'x')).rejects.toThrow('AccessDenied');
    });
  });

  describe('list', () => {
    beforeAll(async () => {
      // Written out of order: the listing is in key order.
      const names = ['c', 'a', 'b', 'e', 'd', 'aa', 'a0', 'b-1', 'é', 'z'];
      for (const n of names) await blobs.put(`batch/L/input/${n}.jsonl`, `${n}\n`, 'application/x-ndjson');
      await blobs.put('batch/L/input/_SUCCESS', new Uint8Array());
      await blobs.put('batch/L2/input/a.jsonl', 'other\n');
    });

    it('lists every object under a prefix in key order with sizes and ETags, across pages', async () => {
      const expected = ['_SUCCESS', 'a.jsonl', 'a0.jsonl', 'aa.jsonl', 'b-1.jsonl', 'b.jsonl', 'c.jsonl']
        .concat(['d.jsonl', 'e.jsonl', 'z.jsonl', 'é.jsonl'])
        .map((n) => `batch/L/input/${n}`);
      for (const listPageSize of [1, 2, 4, 11, 12, 1000]) {
        const listed = await new S3RangedObjects(aws.s3, aws.bucket, { listPageSize }).list('batch/L/input/');
        expect(listed.map((o) => o.key)).toEqual(expected);
        expect(listed.find((o) => o.key === 'batch/L/input/_SUCCESS')!.sizeBytes).toBe(0);
        const a = listed.find((o) => o.key === 'batch/L/input/a.jsonl')!;
        expect(a.sizeBytes).toBe(2);
        expect(a.eTag).toMatch(/^[0-9a-f]{32}$/);
      }
    });

    it('lists nothing under an empty prefix', async () => {
      expect(await objects.list('batch/none/')).toEqual([]);
    });

    it('emulator: every truncated ListObjectsV2 page fails (its continuation token needs DES)', async () => {
      const v2 = (MaxKeys: number) =>
        aws.s3.send(new ListObjectsV2Command({ Bucket: aws.bucket, Prefix: 'batch/L/input/', MaxKeys }));
      await expect(v2(2)).rejects.toMatchObject({ $metadata: { httpStatusCode: 500 } });
      expect((await v2(1000)).KeyCount).toBe(11);
    });

    it('emulator: lists a key after the folder it starts (b/x before b.jsonl); pages can skip it', async () => {
      await blobs.put('batch/N/b.jsonl', 'b\n');
      await blobs.put('batch/N/b/x.jsonl', 'x\n');
      const all = await objects.list('batch/N/');
      expect(all.map((o) => o.key)).toEqual(['batch/N/b.jsonl', 'batch/N/b/x.jsonl']);
      const paged = await new S3RangedObjects(aws.s3, aws.bucket, { listPageSize: 1 }).list('batch/N/');
      expect(paged.map((o) => o.key)).toEqual(['batch/N/b/x.jsonl']);
    });
  });

  describe('folders', () => {
    beforeAll(async () => {
      for (const f of ['f3', 'f1', 'f5', 'f2', 'f4']) {
        for (const k of ['a', 'b/c']) await blobs.put(`folders/${f}/${k}`, 'x');
      }
      await blobs.put('folders/top', 'x');
    });

    it('lists the folders under a prefix in key order, without the keys beside them', async () => {
      expect(await blobs.folders('folders/')).toEqual({
        folders: ['f1', 'f2', 'f3', 'f4', 'f5'],
        truncated: false,
      });
    });

    it('lists the folders after startAfter only (a folder named by it is not listed again)', async () => {
      expect(await blobs.folders('folders/', { startAfter: 'folders/f2/' })).toEqual({
        folders: ['f3', 'f4', 'f5'],
        truncated: false,
      });
      expect(await blobs.folders('folders/', { startAfter: 'folders/f2/b/c' })).toMatchObject({
        folders: ['f3', 'f4', 'f5'],
      });
    });

    it('emulator: answers every folder in one page, whatever MaxKeys (S3 pages them)', async () => {
      expect(await blobs.folders('folders/', { maxKeys: 1 })).toEqual({
        folders: ['f1', 'f2', 'f3', 'f4', 'f5'],
        truncated: false,
      });
    });

    it('lists no folder under a prefix without any', async () => {
      expect(await blobs.folders('folders/f1/b/')).toEqual({ folders: [], truncated: false });
      expect(await blobs.folders('none/')).toEqual({ folders: [], truncated: false });
    });
  });

  describe('multipart uploads', () => {
    const seg = (i: number) => `batch/M/parts/${String(i).padStart(6, '0')}/000000000-000000010.jsonl`;
    const segments = [text(S3_MIN_PART_BYTES + 3, 11), text(S3_MIN_PART_BYTES, 12), text(777, 13)];
    beforeAll(async () => {
      for (const [i, s] of segments.entries()) await blobs.put(seg(i), s, 'application/x-ndjson');
    });

    const read = async (key: string) => Buffer.from((await blobs.get(key))!);

    it('assembles copies of whole objects and uploaded bytes in part-number order', async () => {
      const key = 'batch/M/output.jsonl';
      const id = await objects.createMultipart(key, 'application/x-ndjson');
      const uploaded = Buffer.concat([text(1000, 21), text(2000, 22)]);
      // Sent out of order and completed out of order: the object is the parts by number.
      const p3 = await objects.uploadPart(key, id, 3, new Uint8Array(uploaded));
      const p2 = await objects.copyPart(key, id, 2, seg(1));
      const p1 = await objects.copyPart(key, id, 1, seg(0));
      const p4 = await objects.copyPart(key, id, 4, seg(2));
      expect([p1, p2, p3, p4].map((p) => p.partNumber)).toEqual([1, 2, 3, 4]);
      for (const p of [p1, p2, p3, p4]) expect(p.eTag).toMatch(/^"?[0-9a-f]{32}"?$/);
      await objects.completeMultipart(key, id, [p4, p2, p3, p1]);
      expect(
        (await read(key)).equals(Buffer.concat([segments[0]!, segments[1]!, uploaded, segments[2]!])),
      ).toBe(true);
    });

    it('copies byte ranges of a source object', async () => {
      const key = 'batch/M/ranges.jsonl';
      const src = seg(0);
      const id = await objects.createMultipart(key, 'application/x-ndjson');
      const cut = S3_MIN_PART_BYTES - 5;
      const parts = [
        await objects.copyPart(key, id, 1, src, { start: 0, end: cut }),
        await objects.copyPart(key, id, 2, src, { start: cut, end: segments[0]!.byteLength }),
        await objects.copyPart(key, id, 3, seg(2), { start: 5, end: 6 }),
      ];
      await objects.completeMultipart(key, id, parts);
      expect((await read(key)).equals(Buffer.concat([segments[0]!, segments[2]!.subarray(5, 6)]))).toBe(true);
    });

    it('takes the key of a source that needs encoding', async () => {
      const src = "batch/M/job=1/odd name/!'()*~é=&,;:@$%.jsonl";
      await blobs.put(src, 'odd\n');
      const key = 'batch/M/odd-output.jsonl';
      const id = await objects.createMultipart(key, 'application/x-ndjson');
      await objects.completeMultipart(key, id, [await objects.copyPart(key, id, 1, src)]);
      expect((await read(key)).toString()).toBe('odd\n');
    });

    it('fails a copy of a missing source, and a copy range past the source end', async () => {
      const key = 'batch/M/fail.jsonl';
      const id = await objects.createMultipart(key, 'application/x-ndjson');
      await expect(objects.copyPart(key, id, 1, 'batch/M/none.jsonl')).rejects.toMatchObject({
        name: 'NoSuchKey',
      });
      await expect(objects.copyPart(key, id, 1, seg(2), { start: 0, end: 778 })).rejects.toMatchObject({
        name: 'InvalidArgument',
      });
      await expect(objects.copyPart(key, id, 1, seg(2), { start: 3, end: 3 })).rejects.toThrow(RangeError);
      await objects.abortMultipart(key, id);
    });

    it('emulator: accepts parts below 5 MiB that are not the last (S3 refuses them: EntityTooSmall)', async () => {
      const key = 'batch/M/tiny.jsonl';
      const id = await objects.createMultipart(key, 'application/x-ndjson');
      const parts = [
        await objects.uploadPart(key, id, 1, Buffer.from('a\n')),
        await objects.copyPart(key, id, 2, seg(2)),
        await objects.uploadPart(key, id, 3, Buffer.from('z\n')),
      ];
      await objects.completeMultipart(key, id, parts);
      expect((await read(key)).toString()).toBe(`a\n${segments[2]!.toString()}z\n`);
    });

    it('emulator: copies the whole source for the range bytes=0-0 (S3 copies one byte)', async () => {
      const key = 'batch/M/first-byte.jsonl';
      const id = await objects.createMultipart(key, 'application/x-ndjson');
      await objects.completeMultipart(key, id, [
        await objects.copyPart(key, id, 1, seg(2), { start: 0, end: 1 }),
      ]);
      expect((await read(key)).equals(segments[2]!)).toBe(true);
    });

    it('emulator: does not check ETags, and completes the parts listed in part-number order', async () => {
      const key = 'batch/M/raw.jsonl';
      const { UploadId } = await aws.s3.send(
        new CreateMultipartUploadCommand({ Bucket: aws.bucket, Key: key }),
      );
      for (const [n, body] of [
        [1, 'one\n'],
        [2, 'two\n'],
        [3, 'three\n'],
      ] as const) {
        await aws.s3.send(
          new UploadPartCommand({
            Bucket: aws.bucket,
            Key: key,
            UploadId,
            PartNumber: n,
            Body: Buffer.from(body),
          }),
        );
      }
      // S3 refuses a list out of order (InvalidPartOrder) and a wrong ETag (InvalidPart); s3rver sorts and trusts.
      await aws.s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: aws.bucket,
          Key: key,
          UploadId,
          MultipartUpload: {
            Parts: [
              { PartNumber: 3, ETag: '"0"' },
              { PartNumber: 1, ETag: '"0"' },
            ],
          },
        }),
      );
      expect((await read(key)).toString()).toBe('one\nthree\n');
    });

    it('emulator: answers AbortMultipartUpload 405; the adapter resolves (the upload is abandoned)', async () => {
      const key = 'batch/M/aborted.jsonl';
      const id = await objects.createMultipart(key, 'application/x-ndjson');
      await objects.uploadPart(key, id, 1, Buffer.from('x\n'));
      await expect(
        aws.s3.send(new AbortMultipartUploadCommand({ Bucket: aws.bucket, Key: key, UploadId: id })),
      ).rejects.toMatchObject({ $metadata: { httpStatusCode: 405 } });
      await expect(objects.abortMultipart(key, id)).resolves.toBeUndefined();
      expect(await blobs.head(key)).toBeUndefined();
    });
  });
});
