/**
 * Registry requests (pure): page parameters, request schemas (zod, strict), `s3Uri` parsing, and the rules of
 * status changes and post-processing. Names are validated by ./names, pagination tokens and alias preconditions
 * live in ./registry-rules, and the decisions of version allocation, alias moves, rollbacks, archive and delete
 * are the planners of ./registry-plans. No AWS SDK, no onnxruntime, no Lambda types.
 */
import { z } from 'zod';
import { LIMITS } from '../contract/limits';
import { type CaptureConfig, parseCaptureConfig } from './capture';
import { BadRequestError, ConflictError } from './errors';
import { hasLoneSurrogate, quoted } from './names';
import { checkPostprocess } from './postprocess';
import { parseRouting } from './routing';
import type { AliasRouting, ModelSignature, ModelVersion, PostprocessSpec, VersionStatus } from './types';

/** Parses the `limit` query parameter (1..LIMITS.maxPageSize, default LIMITS.defaultPageSize). */
export function parseLimit(raw: string | undefined): number {
  if (raw === undefined || raw === '') return LIMITS.defaultPageSize;
  if (!/^[0-9]+$/.test(raw) || Number(raw) < 1 || Number(raw) > LIMITS.maxPageSize) {
    throw new BadRequestError(
      `invalid limit '${quoted(raw)}': an integer from 1 to ${LIMITS.maxPageSize} is required`,
      'INVALID_LIMIT',
    );
  }
  return Number(raw);
}

// ---------------------------------------------------------------------------------------------
// Request schemas

/**
 * `schema` (a record) for a map of the caller's whose `__proto__` key is refused, not dropped: a record leaves that
 * key out (as a key of the object the map becomes it would set the object's prototype).
 */
export function refusingProtoKey<T extends z.ZodType>(schema: T, what: string) {
  return z
    .unknown()
    .refine((v) => typeof v !== 'object' || v === null || !Object.hasOwn(v, '__proto__'), {
      message: `'__proto__' is not a ${what}`,
    })
    .pipe(schema);
}

/**
 * A caller's text that the registry stores (a DynamoDB string, a label written into the model's BYTES output):
 * at most `max` characters of well-formed text. A lone UTF-16 surrogate has no UTF-8 form; stored, it would come
 * back as U+FFFD, so it is refused instead of altered.
 */
export function storedText(max: number, min = 0) {
  return z
    .string()
    .min(min)
    .max(max)
    .refine((s) => !hasLoneSurrogate(s), {
      message: 'must be well-formed text (a lone UTF-16 surrogate, \\ud800-\\udfff alone, has no UTF-8 form)',
    });
}

export const tagsSchema = refusingProtoKey(z.record(storedText(128, 1), storedText(256)), 'tag name').refine(
  (t) => Object.keys(t).length <= LIMITS.maxTags,
  {
    message: `at most ${LIMITS.maxTags} tags are allowed`,
  },
);

/** A version's description, and the reason of an alias move or rollback. */
export const descriptionSchema = storedText(LIMITS.maxDescriptionLength);

export const postprocessSchema = z.strictObject({
  output: storedText(256, 1).optional(),
  softmax: z.boolean().optional(),
  argmax: z.boolean().optional(),
  topK: z.number().int().min(1).max(1000).optional(),
});

const labelsSchema = z
  .array(storedText(256))
  .max(LIMITS.maxLabels)
  .refine((l) => Buffer.byteLength(JSON.stringify(l), 'utf8') <= LIMITS.maxLabelsBytes, {
    message: `labels must serialize to at most ${LIMITS.maxLabelsBytes} bytes`,
  });

/** `POST /models/{name}/versions`: exactly one of `uploadId` / `s3Uri`; `preprocess` see ./preprocess-spec. */
export const registerVersionBodySchema = z
  .strictObject({
    uploadId: z
      .string()
      .regex(/^[A-Za-z0-9-]{1,64}$/, 'must be 1-64 characters A-Z a-z 0-9 -')
      .optional(),
    s3Uri: z.string().min(1).max(2048).optional(),
    description: descriptionSchema.optional(),
    tags: tagsSchema.optional(),
    labels: labelsSchema.optional(),
    postprocess: postprocessSchema.optional(),
    /** Pre-processing compiled into the model (checked by `parsePreprocessSpec`, 400 `INVALID_PREPROCESS`). */
    preprocess: z.unknown().optional(),
  })
  .refine((b) => (b.uploadId === undefined) !== (b.s3Uri === undefined), {
    message: 'exactly one of uploadId or s3Uri is required',
    path: ['uploadId'],
  });
export type RegisterVersionBody = z.infer<typeof registerVersionBodySchema>;

/**
 * `PATCH /models/{name}/versions/{v}`: only `ARCHIVED` may be set as status; `capture` is checked by
 * {@link parseCapturePatch} (400 `INVALID_CAPTURE`).
 */
export const patchVersionBodySchema = z
  .strictObject({
    description: descriptionSchema.optional(),
    tags: tagsSchema.optional(),
    status: z.literal('ARCHIVED').optional(),
    capture: z.unknown().optional(),
  })
  .refine((b) => Object.keys(b).length > 0, { message: 'nothing to change' });
export type PatchVersionBody = z.infer<typeof patchVersionBodySchema>;

/**
 * `PATCH /models/{name}/aliases/{alias}`: `capture` (checked by {@link parseCapturePatch}) and/or `routing` (the
 * traffic split, checked by {@link parseRoutingPatch}); `expectedRevision` and `reason` go with `routing`.
 */
export const patchAliasBodySchema = z
  .strictObject({
    capture: z.unknown().optional(),
    routing: z.unknown().optional(),
    expectedRevision: z.number().int().min(0).optional(),
    reason: descriptionSchema.optional(),
  })
  .refine((b) => Object.hasOwn(b, 'capture') || Object.hasOwn(b, 'routing'), {
    message: 'capture or routing is required',
    path: ['routing'],
  })
  .refine(
    (b) => Object.hasOwn(b, 'routing') || (b.expectedRevision === undefined && b.reason === undefined),
    {
      message: 'expectedRevision and reason go with routing',
      path: ['routing'],
    },
  );
export type PatchAliasBody = z.infer<typeof patchAliasBodySchema>;

/**
 * The `routing` of a PATCH body: null removes the split, anything else must be a split (`parseRouting`, 400
 * `INVALID_ROUTING`); undefined when the body does not give it.
 */
export function parseRoutingPatch(value: unknown): AliasRouting | null | undefined {
  if (value === undefined) return undefined;
  if (value === null) return null;
  return parseRouting(value);
}

/**
 * The `capture` of a PATCH body: null removes the declaration, anything else must be a capture declaration
 * (`parseCaptureConfig`, 400 `INVALID_CAPTURE`); undefined when the body does not give it.
 */
export function parseCapturePatch(value: unknown): CaptureConfig | null | undefined {
  if (value === undefined) return undefined;
  if (value === null) return null;
  return parseCaptureConfig(value);
}

/** `PUT /models/{name}/aliases/{alias}`. `expectedVersion: 0` means "the alias must not exist yet". */
export const moveAliasBodySchema = z.strictObject({
  version: z.number().int().min(1),
  expectedVersion: z.number().int().min(0).optional(),
  reason: descriptionSchema.optional(),
});
export type MoveAliasBody = z.infer<typeof moveAliasBodySchema>;

/**
 * `POST /models/{name}/aliases/{alias}/rollback` (body optional). `expectedVersion` (0 = the alias must not exist)
 * and `expectedRevision` are what the caller saw: the rollback happens only if the alias is still there (412).
 */
export const rollbackBodySchema = z.strictObject({
  expectedVersion: z.number().int().min(0).optional(),
  expectedRevision: z.number().int().min(0).optional(),
  reason: descriptionSchema.optional(),
});

/**
 * `POST /models/{name}/aliases/{alias}/rollout/{action}` (body optional): `id`, the rollout the caller acts on (409
 * `ROLLOUT_NOT_ACTIVE` when the alias's rollout is another one).
 */
export const rolloutActionBodySchema = z.strictObject({
  id: z.string().min(1).max(128).optional(),
});

/**
 * `POST /models/{name}/uploads`: `sizeBytes`, the artifact's exact size, is signed into the upload URL, so that
 * storage refuses any other size: every upload slot is capped (at most `LIMITS.maxModelBytes`).
 */
export const createUploadBodySchema = z.strictObject({
  sizeBytes: z.number().int().positive(),
});

/** Validates `input` against `schema`; the 400 names the offending field(s). */
export function parseWith<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const message = result.error.issues
    .slice(0, 5)
    .map((issue) => {
      if (issue.code === 'unrecognized_keys') return `unknown field(s): ${issue.keys.join(', ')}`;
      const path = issue.path.map(String).join('.');
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join('; ');
  throw new BadRequestError(`invalid request: ${message}`, 'VALIDATION_ERROR');
}

/** S3's limit on the length of an object key, in UTF-8 bytes. */
export const MAX_S3_KEY_BYTES = 1024;

// C0 and C1 control characters (NUL included) and lone UTF-16 surrogates, which have no UTF-8 form.
const KEY_FORBIDDEN = /\p{Cc}|\p{Cs}/u;
// A path segment that is `.` or `..`, also with its dots percent-encoded (`%2e`).
const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;

/**
 * Why `key` cannot name an object the registry reads, or undefined when it can: a key over S3's 1024-byte limit,
 * one with a control character (NUL included) or a lone surrogate, or one with a `.` / `..` segment (plain or
 * percent-encoded), which path normalization in a client, proxy or object store could resolve to a key
 * outside the prefix it appears to be under.
 */
export function objectKeyProblem(key: string): string | undefined {
  if (key === '') return 'the key is empty';
  if (KEY_FORBIDDEN.test(key)) return 'the key contains a control character or an invalid UTF-16 sequence';
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > MAX_S3_KEY_BYTES) return `the key is ${bytes} bytes; S3 keys are at most ${MAX_S3_KEY_BYTES}`;
  if (key.split('/').some((segment) => DOT_SEGMENT.test(segment))) {
    return "the key contains a '.' or '..' segment";
  }
  return undefined;
}

/** Throws 400 `INVALID_S3_KEY` for a key `objectKeyProblem` refuses. */
export function assertObjectKey(key: string): void {
  const problem = objectKeyProblem(key);
  if (problem) throw new BadRequestError(`invalid object key '${quoted(key)}': ${problem}`, 'INVALID_S3_KEY');
}

/** Parses `s3://bucket/key`; the key must pass `objectKeyProblem` (400 `INVALID_S3_URI` otherwise). */
export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/(.+)$/s.exec(uri);
  if (!m)
    throw new BadRequestError(`invalid s3Uri '${quoted(uri)}': expected s3://bucket/key`, 'INVALID_S3_URI');
  const key = m[2]!;
  const problem = objectKeyProblem(key);
  if (problem) throw new BadRequestError(`invalid s3Uri '${quoted(uri)}': ${problem}`, 'INVALID_S3_URI');
  return { bucket: m[1]!, key };
}

// ---------------------------------------------------------------------------------------------
// Rules

/** Status changes a PATCH may make: READY -> ARCHIVED (ARCHIVED -> ARCHIVED is a no-op). */
export function assertStatusChange(
  v: Pick<ModelVersion, 'name' | 'version' | 'status'>,
  to: VersionStatus,
): void {
  if (to === 'ARCHIVED' && (v.status === 'READY' || v.status === 'ARCHIVED')) return;
  throw new ConflictError(
    `version ${v.version} of model '${v.name}' is ${v.status}; it cannot become ${to}`,
    'INVALID_STATUS_CHANGE',
  );
}

/** Rejects (400) a post-processing declaration that cannot work with the model's outputs. */
export function assertPostprocessFits(
  spec: PostprocessSpec | undefined,
  labels: readonly string[] | undefined,
  signature: ModelSignature,
): void {
  if (spec?.output !== undefined && !signature.outputs.some((o) => o.name === spec.output)) {
    const names = signature.outputs.map((o) => o.name).join(', ');
    throw new BadRequestError(
      `postprocess.output '${spec.output}' is not an output of the model (outputs: ${names})`,
      'VALIDATION_ERROR',
    );
  }
  const problem = checkPostprocess(spec, labels, signature);
  if (problem) throw new BadRequestError(problem, 'VALIDATION_ERROR');
}
