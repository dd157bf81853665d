/**
 * Derived versions' ports: what applies transforms to a model (the ONNX adapter in
 * functions/adapters/onnx-transformer.ts), and where a derivation continues (the work queue).
 */
import type { DeriveMessage, TransformSpec } from '../domain/derive';

/** Applies transforms to ONNX model bytes. */
export interface ModelTransformer {
  /**
   * The model with `transforms` applied, in order. A transform that cannot apply to this model (a declaration that
   * does not fit its inputs, an operator it cannot rewrite) throws a MaasError of status 4xx (`BadRequestError`,
   * `UnprocessableModelError`): the derivation is then FAILED with its message; any other error is transient.
   */
  apply(model: Uint8Array, transforms: readonly TransformSpec[]): Promise<Uint8Array>;
}

/** The transformer of derived versions: it also says what it does with the options a request leaves out. */
export interface DeriveTransformer extends ModelTransformer {
  /**
   * `transforms` with every option this transformer would default written out (int8's `reduceRange`, which
   * depends on the architecture, and `perChannel`): what `apply` does with them, and what a derived version
   * records once completed.
   */
  resolve(transforms: readonly TransformSpec[]): TransformSpec[];
}

/** Where a derivation continues: the work queue (SQS in AWS, the in-process queue locally). */
export interface DeriveQueue {
  /** Resolves with the queue's message id once the message is durably enqueued. */
  send(message: DeriveMessage): Promise<string>;
}
