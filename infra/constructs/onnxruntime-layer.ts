/**
 * OnnxRuntimeLayer: onnxruntime-node + onnxruntime-common for one Linux architecture, built at synth time
 * on the local machine (no Docker) by `layers/onnxruntime/build.ts`.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AssetHashType, DockerImage } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import {
  buildOnnxRuntimeLayer,
  LAYER_PACKAGES,
  type LayerArch,
  nodeArch,
  ONNXRUNTIME_VERSION,
} from '../../layers/onnxruntime/build';

/** Props of {@link OnnxRuntimeLayer}. */
export interface OnnxRuntimeLayerProps {
  /** Target architecture; functions using the layer must use the same. @default Architecture.X86_64 */
  readonly architecture?: lambda.Architecture;
  /** The layer's only compatible runtime; functions using the layer must use the same. @default Runtime.NODEJS_24_X */
  readonly runtime?: lambda.Runtime;
}

/** Maps a Lambda architecture to the layer build's name for it. */
export function layerArch(architecture: lambda.Architecture): LayerArch {
  if (architecture.name === lambda.Architecture.ARM_64.name) return 'arm64';
  if (architecture.name === lambda.Architecture.X86_64.name) return 'x86_64';
  throw new Error(`unsupported architecture ${architecture.name}`);
}

/**
 * A LayerVersion whose content is `nodejs/node_modules/{onnxruntime-node,onnxruntime-common}` with only
 * `bin/napi-v6/linux/<x64|arm64>` binaries. The asset is built by local bundling (the Docker image is
 * never used) and hashed by version + architecture, so an unchanged layer is not rebuilt or re-uploaded.
 */
export class OnnxRuntimeLayer extends Construct {
  /** The layer version. */
  readonly layer: lambda.LayerVersion;
  /** The architecture of its binaries. */
  readonly architecture: lambda.Architecture;
  /** Its compatible runtime. */
  readonly runtime: lambda.Runtime;

  constructor(scope: Construct, id: string, props: OnnxRuntimeLayerProps = {}) {
    super(scope, id);
    this.architecture = props.architecture ?? lambda.Architecture.X86_64;
    this.runtime = props.runtime ?? lambda.Runtime.NODEJS_24_X;
    const arch = layerArch(this.architecture);
    const layerDir = fileURLToPath(new URL('../../layers/onnxruntime', import.meta.url));
    // The content depends only on the pinned version, the architecture, the package list and the build script.
    const script = createHash('sha256')
      .update(readFileSync(`${layerDir}/build.ts`))
      .update(LAYER_PACKAGES.join(','))
      .digest('hex')
      .slice(0, 16);
    const code = lambda.Code.fromAsset(layerDir, {
      assetHashType: AssetHashType.CUSTOM,
      assetHash: `onnxruntime-node-${ONNXRUNTIME_VERSION}-linux-${nodeArch(arch)}-${script}`,
      bundling: {
        // Required by the API; local bundling below always succeeds or throws, so it is never pulled.
        image: DockerImage.fromRegistry('public.ecr.aws/docker/library/node:24-slim'),
        local: {
          tryBundle(outputDir: string): boolean {
            buildOnnxRuntimeLayer({ arch, outDir: outputDir });
            return true;
          },
        },
      },
    });
    this.layer = new lambda.LayerVersion(this, 'Layer', {
      code,
      compatibleArchitectures: [this.architecture],
      compatibleRuntimes: [this.runtime],
      description: `onnxruntime-node ${ONNXRUNTIME_VERSION} (CPU, linux-${nodeArch(arch)})`,
      license: 'MIT',
    });
  }
}
