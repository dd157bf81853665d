/**
 * ModelTransformer over the TypeScript ONNX transforms of functions/transforms: int8 dynamic quantisation
 * (`quantizeInt8`), portable graph optimisation (`optimizeBasic`) and compiled pre-processing (`applyPreprocess`),
 * applied in the order given.
 */
import { describeTransform, type QuantizeTransform, type TransformSpec } from '../domain/derive';
import { UnprocessableModelError } from '../domain/errors';
import { parsePreprocessSpec } from '../domain/preprocess-spec';
import type { DeriveTransformer } from '../ports/derive';
import { optimizeBasic } from '../transforms/optimize';
import { applyPreprocess } from '../transforms/preprocess';
import { defaultReduceRange, quantizeInt8 } from '../transforms/quantize';

/** Applies the transforms of a derive request with the functions/transforms modules. */
export class OnnxModelTransformer implements DeriveTransformer {
  /**
   * @param arch the architecture whose default decides int8's reduced range (that of the functions serving the
   * model). @default process.arch
   */
  constructor(private readonly arch: string = process.arch) {}

  /** int8 with `reduceRange` (the architecture's default unless given) and `perChannel` (`false` unless given). */
  resolve(transforms: readonly TransformSpec[]): TransformSpec[] {
    return transforms.map((t) => ('quantize' in t ? this.resolveQuantize(t) : t));
  }

  async apply(model: Uint8Array, transforms: readonly TransformSpec[]): Promise<Uint8Array> {
    let bytes = model;
    for (const t of transforms) bytes = await this.applyOne(bytes, t);
    return bytes;
  }

  private resolveQuantize(t: QuantizeTransform): Required<QuantizeTransform> {
    return {
      quantize: t.quantize,
      reduceRange: t.reduceRange ?? defaultReduceRange(this.arch),
      perChannel: t.perChannel ?? false,
    };
  }

  private async applyOne(model: Uint8Array, t: TransformSpec): Promise<Uint8Array> {
    if ('quantize' in t) {
      const { reduceRange, perChannel } = this.resolveQuantize(t);
      const r = quantizeInt8(model, { reduceRange, perChannel });
      if (r.quantized.length === 0) {
        throw new UnprocessableModelError(
          `${describeTransform(t)}: the model has no MatMul or Gemm with constant weights to quantise`,
        );
      }
      return r.model;
    }
    if ('optimize' in t) return optimizeBasic(model);
    return applyPreprocess(model, parsePreprocessSpec(t.preprocess));
  }
}
