import { Duration, Validations } from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { SECURE_BUCKET_DEFAULTS, uniqueBucketName } from '../model-store.ts';
import { URL_REWRITE_SOURCE } from './url-rewrite.ts';

/** Content-Security-Policy of the docs: same-origin only (VitePress inlines its theme bootstrap). */
export const DOCS_CSP = [
  "default-src 'self'",
  "script-src 'self' 'unsafe-inline'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Cache-Control of the docs objects, set by docs.yml as it uploads them. The distribution's
 * CachingOptimized policy honours it (within 1 s to 1 year), so the objects, not the policy,
 * decide how long a browser and an edge keep each one.
 */
export const DOCS_CACHE_CONTROL = {
  /** Files under `assets/`: VitePress names them by content hash, so a name never changes meaning. */
  assets: 'public, max-age=31536000, immutable',
  /**
   * HTML, `hashmap.json` (VitePress re-reads it when a page chunk fails to load), `vp-icons.css` and
   * `public/` files: browsers revalidate on every visit; edges keep them a day, the same as the
   * policy's default TTL, and each publish invalidates them.
   */
  pages: 'public, max-age=0, s-maxage=86400',
} as const;

/** Properties of `DocsSite`. */
export interface DocsSiteProps {
  /** Bucket for CloudFront access logs (ACLs enabled) and the docs bucket's server access logs. */
  readonly accessLogsBucket: s3.IBucket;
  /** Name of the docs bucket. @default `slipway-docs-<account>-<region>`, or generated when `fixedBucketName` is false */
  readonly bucketName?: string;
  /** Name an unnamed docs bucket `slipway-docs-<account>-<region>`; false lets CloudFormation generate one. @default true */
  readonly fixedBucketName?: boolean;
}

/** The documentation site: a private bucket served only through CloudFront with Origin Access Control. */
export class DocsSite extends Construct {
  /** The docs bucket (private; no website hosting). */
  readonly bucket: s3.Bucket;
  /** The distribution. */
  readonly distribution: cloudfront.Distribution;

  constructor(scope: Construct, id: string, props: DocsSiteProps) {
    super(scope, id);
    this.bucket = new s3.Bucket(this, 'Bucket', {
      ...SECURE_BUCKET_DEFAULTS,
      bucketName:
        props.bucketName ?? ((props.fixedBucketName ?? true) ? uniqueBucketName('slipway-docs') : undefined),
      serverAccessLogsBucket: props.accessLogsBucket,
      serverAccessLogsPrefix: 'docs/',
    });

    const urlRewrite = new cloudfront.Function(this, 'UrlRewrite', {
      code: cloudfront.FunctionCode.fromInline(URL_REWRITE_SOURCE),
      runtime: cloudfront.FunctionRuntime.JS_2_0,
      comment: 'Map directory URLs to index.html',
    });

    const headers = new cloudfront.ResponseHeadersPolicy(this, 'SecurityHeaders', {
      comment: 'Slipway docs: HSTS, CSP, nosniff, frame options, referrer policy',
      securityHeadersBehavior: {
        strictTransportSecurity: {
          accessControlMaxAge: Duration.days(730),
          includeSubdomains: true,
          override: true,
        },
        contentSecurityPolicy: { contentSecurityPolicy: DOCS_CSP, override: true },
        contentTypeOptions: { override: true },
        frameOptions: { frameOption: cloudfront.HeadersFrameOption.DENY, override: true },
        referrerPolicy: {
          referrerPolicy: cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN,
          override: true,
        },
      },
    });

    this.distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: 'Slipway documentation',
      defaultRootObject: 'index.html',
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(this.bucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        // Honours each object's Cache-Control (DOCS_CACHE_CONTROL); docs.yml invalidates /* on publish.
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
        responseHeadersPolicy: headers,
        functionAssociations: [
          { function: urlRewrite, eventType: cloudfront.FunctionEventType.VIEWER_REQUEST },
        ],
      },
      // Without s3:ListBucket a missing key is a 403 from S3: show the site's 404 page instead.
      errorResponses: [
        { httpStatus: 403, responseHttpStatus: 404, responsePagePath: '/404.html', ttl: Duration.minutes(1) },
      ],
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
      enableLogging: true,
      logBucket: props.accessLogsBucket,
      logFilePrefix: 'cloudfront/',
    });

    const acks: Array<[string, string]> = [
      [
        'AwsSolutions-CFR1',
        'Internal documentation with no content restricted by country; geo restriction adds nothing.',
      ],
      [
        'AwsSolutions-CFR2',
        'Static, read-only documentation from a private origin; a WAF web ACL (about $5+/month) protects nothing dynamic. Attach one via webAclId if policy requires.',
      ],
      [
        'AwsSolutions-CFR4',
        'Uses the default *.cloudfront.net certificate, whose TLS policy CloudFront fixes; TLSv1.2_2021 applies once a custom domain is added.',
      ],
    ];
    for (const [rule, reason] of acks) Validations.of(this.distribution).acknowledge({ id: rule, reason });
  }
}
