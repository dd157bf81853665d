/**
 * TracerLayer: the Powertools Tracer and the X-Ray SDK as one CommonJS file under `nodejs/node_modules`, built at
 * synth time on the local machine (no Docker) by `layers/tracer/build.ts`. Attached only to the functions that
 * load the tracer when traced; the function bundles leave it out (`TRACER_LAYER_EXTERNALS`).
 */
import { fileURLToPath } from 'node:url';
import { AssetHashType, DockerImage } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { buildTracerLayer, TRACER_PACKAGE, tracerVersion } from '../../layers/tracer/build';

/** Props of {@link TracerLayer}. */
export interface TracerLayerProps {
  /** The layer's only compatible runtime; functions using the layer must use the same. @default Runtime.NODEJS_24_X */
  readonly runtime?: lambda.Runtime;
  /**
   * Compatible architectures (the layer is plain JavaScript, so one build serves both).
   * @default [Architecture.X86_64, Architecture.ARM_64]
   */
  readonly architectures?: readonly lambda.Architecture[];
}

/**
 * A LayerVersion whose content is `nodejs/node_modules/@aws-lambda-powertools/tracer/{index.js,package.json}`.
 * The asset is built by local bundling (the Docker image is never used) and hashed by its output, so an unchanged
 * bundle (same tracer, same X-Ray SDK from package-lock.json) is not re-uploaded.
 */
export class TracerLayer extends Construct {
  /** The layer version. */
  readonly layer: lambda.LayerVersion;
  /** Its compatible runtime. */
  readonly runtime: lambda.Runtime;
  /** The bundled `@aws-lambda-powertools/tracer` version. */
  readonly version: string;

  constructor(scope: Construct, id: string, props: TracerLayerProps = {}) {
    super(scope, id);
    this.runtime = props.runtime ?? lambda.Runtime.NODEJS_24_X;
    this.version = tracerVersion();
    const layerDir = fileURLToPath(new URL('../../layers/tracer', import.meta.url));
    const code = lambda.Code.fromAsset(layerDir, {
      assetHashType: AssetHashType.OUTPUT,
      exclude: ['build'],
      bundling: {
        // Required by the API; local bundling below always succeeds or throws, so it is never pulled.
        image: DockerImage.fromRegistry('public.ecr.aws/docker/library/node:24-slim'),
        local: {
          tryBundle(outputDir: string): boolean {
            buildTracerLayer({ outDir: outputDir, log: false });
            return true;
          },
        },
      },
    });
    this.layer = new lambda.LayerVersion(this, 'Layer', {
      code,
      compatibleArchitectures: [
        ...(props.architectures ?? [lambda.Architecture.X86_64, lambda.Architecture.ARM_64]),
      ],
      compatibleRuntimes: [this.runtime],
      description: `${TRACER_PACKAGE} ${this.version} with aws-xray-sdk-core (one CommonJS bundle)`,
      license: 'MIT-0 AND Apache-2.0',
    });
  }
}
