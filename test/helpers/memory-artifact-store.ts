/**
 * An ArtifactStore in memory for the registry's unit tests: objects by key, the keys written in order, and
 * presigned URLs that show what was signed (`?ttl=…&size=…`).
 */
import type { ArtifactStore } from '../../functions/ports';

export class MemoryArtifactStore implements ArtifactStore {
  readonly bucket = 'b';
  /** The keys written, in order. */
  readonly writes: string[] = [];

  constructor(readonly objects: Map<string, Uint8Array> = new Map()) {}

  async getObject(key: string): Promise<Uint8Array> {
    const o = this.objects.get(key);
    if (!o) throw new Error('missing');
    return o;
  }

  async putObject(key: string, body: Uint8Array): Promise<void> {
    this.writes.push(key);
    this.objects.set(key, body);
  }

  async headObject(key: string): Promise<{ sizeBytes: number } | undefined> {
    const o = this.objects.get(key);
    return o ? { sizeBytes: o.byteLength } : undefined;
  }

  async deleteObject(key: string): Promise<void> {
    this.objects.delete(key);
  }

  async presignPut(key: string, ttl: number, sizeBytes: number): Promise<string> {
    return `https://s3.example/${key}?ttl=${ttl}&size=${sizeBytes}`;
  }
}
