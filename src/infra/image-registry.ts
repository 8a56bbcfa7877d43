import { RemovalPolicy } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import { Construct } from 'constructs';
import { imageRepositoryName } from '../names.ts';

/** Properties of `ImageRegistry`. */
export interface ImageRegistryProps {
  /** Images kept per repository; older ones expire. @default 20 */
  readonly imagesToKeep?: number;
  /** Stack name of the stage: suffixes the repository names unless it is the default. @default DEFAULT_STACK_NAME */
  readonly stackName?: string;
}

/** ECR repositories of the inference and training images: scan on push, immutable tags, bounded history. */
export class ImageRegistry extends Construct {
  /** The inference image repository. */
  readonly inference: ecr.Repository;
  /** The training image repository. */
  readonly training: ecr.Repository;

  constructor(scope: Construct, id: string, props: ImageRegistryProps = {}) {
    super(scope, id);
    const keep = props.imagesToKeep ?? 20;
    if (!Number.isInteger(keep) || keep < 1) {
      throw new Error(`ImageRegistry: imagesToKeep must be a positive integer (got ${keep})`);
    }
    const make = (cid: string, repositoryName: string): ecr.Repository =>
      new ecr.Repository(this, cid, {
        repositoryName,
        imageScanOnPush: true,
        imageTagMutability: ecr.TagMutability.IMMUTABLE,
        encryption: ecr.RepositoryEncryption.AES_256,
        lifecycleRules: [{ description: `keep the last ${keep} images`, maxImageCount: keep }],
        removalPolicy: RemovalPolicy.RETAIN,
      });
    this.inference = make('Inference', imageRepositoryName('inference', props.stackName));
    this.training = make('Training', imageRepositoryName('training', props.stackName));
  }
}
