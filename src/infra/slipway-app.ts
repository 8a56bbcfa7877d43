import { Annotations, App, DefaultStackSynthesizer, Tags, Validations } from 'aws-cdk-lib';
import type { AppProps } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { parseConfig, readContext, type SlipwayConfig } from './config.ts';
import { PlatformStack } from './platform-stack.ts';
import { RegistryStack } from './registry-stack.ts';

/** Options of `buildSlipwayApp`. */
export interface SlipwayAppOptions {
  /** The app (context is read from it). @default new App() */
  readonly app?: App;
  /** Extra context values (tests), merged over the app's context. @default - none */
  readonly context?: Readonly<Record<string, unknown>>;
  /** Run the cdk-nag AwsSolutions pack at synth. @default true */
  readonly nag?: boolean;
  /** Rollout handler source (tests). @default src/rollout/lambda.ts */
  readonly rolloutEntry?: string;
  /** Cloud assembly directory when the app is created here. @default - the CDK's choice (cdk.out under the CLI) */
  readonly outdir?: string;
}

/** The app with its two stacks and the config they were built from. */
export interface SlipwayApp {
  readonly app: App;
  readonly config: SlipwayConfig;
  readonly registry: RegistryStack;
  /** Absent when `imageTag` is not set (only the registry stack can be deployed then). */
  readonly platform?: PlatformStack;
}

/**
 * Build the Slipway CDK app: the registry stack (ECR, GitHub OIDC, deploy and image roles) and
 * the platform stack, with cdk-nag's AwsSolutions pack.
 *
 * @throws InfraConfigError when the config is invalid.
 * @example buildSlipwayApp({ context: { githubOwner: 'acme', githubRepo: 'slipway', imageTag: 'abc123' } })
 */
export function buildSlipwayApp(options: SlipwayAppOptions = {}): SlipwayApp {
  const app = options.app ?? new App(appProps(options));
  const raw = { ...readContext((key) => app.node.tryGetContext(key)), ...options.context };
  const config = parseConfig(raw);
  const env = config.region ? { region: config.region } : undefined;

  // Both stacks deploy through the bootstrap roles of `cdkQualifier` (one synthesizer per stack).
  const synthesizer = () => new DefaultStackSynthesizer({ qualifier: config.cdkQualifier });

  const registry = new RegistryStack(app, config.registryStackName, {
    config,
    env,
    synthesizer: synthesizer(),
    description: 'Slipway image registry and GitHub OIDC roles (deploy first)',
  });
  let platform: PlatformStack | undefined;
  if (config.imageTag === undefined) {
    // Without a tag the platform cannot run; the registry stack (deployed first) needs none.
    Annotations.of(registry).addWarningV2(
      '@slipway/infra:imageTagNotSet',
      `imageTag is not set, so the ${config.stackName} stack is left out: pass -c imageTag=<the ECR tag to run, e.g. the commit SHA> (deploy.yml passes $GITHUB_SHA)`,
    );
  } else {
    platform = new PlatformStack(app, config.stackName, {
      config: { ...config, imageTag: config.imageTag },
      env,
      synthesizer: synthesizer(),
      rolloutEntry: options.rolloutEntry,
      description: 'Slipway ML platform: storage, training, inference service, rollout, docs',
    });
    platform.addStackDependency(
      registry,
      'the service and training jobs pull images from the registry stack',
    );
  }
  for (const stack of [registry, platform]) if (stack) Tags.of(stack).add('slipway', stack.stackName);
  if (options.nag ?? true) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, config, registry, platform };
}

function appProps(options: SlipwayAppOptions): AppProps {
  return {
    ...(options.context ? { context: { ...options.context } } : {}),
    ...(options.outdir ? { outdir: options.outdir } : {}),
  };
}
