import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { READINESS_PATH } from './inference-service.ts';

/** Properties of `Alarms`. */
export interface AlarmsProps {
  /** Alarms raised elsewhere (the rollout's queues and function) that should notify too. */
  readonly alarms: readonly cloudwatch.Alarm[];
  /** The inference service's load balancer and target group, watched for errors and unhealthy tasks. */
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
  /** Addresses subscribed by email (each confirms once, from the mail AWS sends). @default - none */
  readonly emails?: readonly string[];
}

/**
 * Where the platform's alarms go: one encrypted SNS topic that every alarm notifies on ALARM and
 * on OK, optional email subscriptions, and the inference service's own alarms (5xx from the
 * tasks, unhealthy targets). Subscribe anything else (a chat integration, a pager) to the topic,
 * whose ARN is a stack output.
 */
export class Alarms extends Construct {
  readonly topic: sns.Topic;
  /** The inference service's alarms (the rollout's are the caller's). */
  readonly serviceAlarms: cloudwatch.Alarm[];

  constructor(scope: Construct, id: string, props: AlarmsProps) {
    super(scope, id);
    // CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key: it needs a key
    // whose policy lets it generate data keys.
    const key = new kms.Key(this, 'TopicKey', {
      description: 'Encrypts the Slipway alarm topic',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
      }),
    );
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'Slipway alarms',
      masterKey: key,
      enforceSSL: true,
    });
    for (const email of props.emails ?? []) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(email));
    }

    const period = Duration.minutes(1);
    // Each fires on any count at all (a 5xx is a server fault; client mistakes are 4xx), sustained
    // over `of` one-minute periods, so one unlucky request during a deployment does not page.
    const whenAny = (id: string, description: string, metric: cloudwatch.IMetric, of: number, within = of) =>
      new cloudwatch.Alarm(this, id, {
        alarmDescription: description,
        metric,
        threshold: 1,
        evaluationPeriods: within,
        datapointsToAlarm: of,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    this.serviceAlarms = [
      whenAny(
        'Target5xx',
        'Inference tasks answered with 5xx in 3 of the last 5 minutes',
        props.targetGroup.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, {
          period,
          statistic: 'Sum',
        }),
        3,
        5,
      ),
      whenAny(
        'UnhealthyTargets',
        `An inference task failed its load-balancer health check (GET ${READINESS_PATH}) for 3 minutes`,
        props.targetGroup.metrics.unhealthyHostCount({ period, statistic: 'Maximum' }),
        3,
      ),
      whenAny(
        'LoadBalancer5xx',
        'The load balancer itself answered 5xx (no healthy task, or tasks refusing connections) in 3 of the last 5 minutes',
        props.loadBalancer.metrics.httpCodeElb(elbv2.HttpCodeElb.ELB_5XX_COUNT, { period, statistic: 'Sum' }),
        3,
        5,
      ),
    ];

    const notify = new actions.SnsAction(this.topic);
    for (const alarm of [...props.alarms, ...this.serviceAlarms]) {
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
    }
  }
}
