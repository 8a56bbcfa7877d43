import type { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { SlipwayError } from '../errors.ts';
import { decodeS3EventKey, matchesEventPattern, parseS3ModelUri } from '../rollout/event.ts';
import type { ObjectInfo } from '../store/types.ts';

/** One record of an S3 event notification, as s3rver (and S3 itself) emits it. */
export interface S3NotificationRecord {
  readonly eventName: string;
  readonly eventTime: string;
  readonly awsRegion?: string;
  readonly requestParameters?: { readonly sourceIPAddress?: string };
  readonly responseElements?: { readonly 'x-amz-request-id'?: string };
  readonly s3: {
    readonly bucket: { readonly name: string };
    readonly object: {
      readonly key: string;
      readonly size?: number;
      readonly eTag?: string;
      readonly versionId?: string;
      readonly sequencer?: string;
    };
  };
}

/**
 * Encodes a key the way S3 writes keys into events (form encoding: spaces as `+`, `/` kept).
 * s3rver passes keys through raw; AWS encodes them, and the rollout decodes.
 */
export function encodeS3EventKey(key: string): string {
  return encodeURIComponent(key).replace(/%20/g, '+').replace(/%2F/g, '/');
}

/** An S3 notification: one or more records. */
export interface S3Notification {
  readonly Records: readonly S3NotificationRecord[];
}

/** The EventBridge "Object Created" event S3 sends when EventBridge notifications are on. */
export interface S3ObjectCreatedEvent {
  readonly version: '0';
  readonly id: string;
  readonly 'detail-type': 'Object Created';
  readonly source: 'aws.s3';
  readonly account: string;
  readonly time: string;
  readonly region: string;
  readonly resources: readonly string[];
  readonly detail: {
    readonly version: '0';
    readonly bucket: { readonly name: string };
    readonly object: {
      readonly key: string;
      readonly size?: number;
      readonly etag?: string;
      readonly 'version-id'?: string;
      readonly sequencer?: string;
    };
    readonly 'request-id': string;
    readonly requester: string;
    readonly 'source-ip-address': string;
    readonly reason: string;
  };
}

/** The account id the twin reports in events (AWS's documentation placeholder). */
export const LOCAL_ACCOUNT_ID = '123456789012';

// S3 notification event names -> the `reason` EventBridge reports for the same upload.
const REASONS: Readonly<Record<string, string>> = {
  'ObjectCreated:Put': 'PutObject',
  'ObjectCreated:Post': 'CompleteMultipartUpload',
  'ObjectCreated:Copy': 'CopyObject',
  'ObjectCreated:CompleteMultipartUpload': 'CompleteMultipartUpload',
};

/**
 * Reshapes one S3 notification record into the EventBridge event AWS delivers for it;
 * undefined for anything that is not an object creation.
 */
export function toEventBridgeEvent(record: S3NotificationRecord): S3ObjectCreatedEvent | undefined {
  if (!record.eventName.startsWith('ObjectCreated:')) return undefined;
  const bucket = record.s3.bucket.name;
  const object = record.s3.object;
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'Object Created',
    source: 'aws.s3',
    account: LOCAL_ACCOUNT_ID,
    time: new Date(record.eventTime).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region: record.awsRegion ?? 'us-east-1',
    resources: [`arn:aws:s3:::${bucket}`],
    detail: {
      version: '0',
      bucket: { name: bucket },
      object: {
        key: encodeS3EventKey(object.key),
        ...(object.size !== undefined ? { size: object.size } : {}),
        ...(object.eTag !== undefined ? { etag: object.eTag } : {}),
        ...(object.versionId !== undefined ? { 'version-id': object.versionId } : {}),
        ...(object.sequencer !== undefined ? { sequencer: object.sequencer } : {}),
      },
      'request-id': record.responseElements?.['x-amz-request-id'] ?? randomUUID(),
      requester: LOCAL_ACCOUNT_ID,
      'source-ip-address': record.requestParameters?.sourceIPAddress ?? '127.0.0.1',
      reason: REASONS[record.eventName] ?? 'PutObject',
    },
  };
}

/**
 * The event an upload of an object already in a bucket would have produced, so that the rollout can
 * judge it like one (its last-modified time stands for the event time and, in s3rver's format, the
 * sequencer, unless `ordering` gives the real event's); undefined for an object that is not in S3.
 */
export function storedObjectEvent(
  info: ObjectInfo,
  ordering?: { readonly eventTime: string; readonly sequencer: string },
): S3ObjectCreatedEvent | undefined {
  const location = parseS3ModelUri(info.uri);
  if (!location) return undefined;
  return toEventBridgeEvent({
    eventName: 'ObjectCreated:Put',
    eventTime: ordering?.eventTime ?? info.lastModified.toISOString(),
    s3: {
      bucket: { name: location.bucket },
      object: {
        key: location.key,
        size: info.size,
        ...(info.etag !== undefined ? { eTag: info.etag } : {}),
        ...(location.versionId !== undefined ? { versionId: location.versionId } : {}),
        sequencer: ordering?.sequencer ?? info.lastModified.getTime().toString(16).toUpperCase(),
      },
    },
  });
}

/** A subscriber of the bus: called once per matching event, one event at a time. */
export type EventHandler = (event: S3ObjectCreatedEvent) => Promise<void> | void;

/** Options of {@link EventBus}. */
export interface EventBusOptions {
  /** The EventBridge rule pattern deliveries must match (the same object infra deploys). */
  readonly pattern: object;
  readonly handler: EventHandler;
  /** Called when the handler throws (the event is dropped after `maxAttempts`). */
  readonly onError?: (err: unknown, event: S3ObjectCreatedEvent, attempt: number) => void;
  /** Deliveries per event before giving up (EventBridge retries too); default 2. */
  readonly maxAttempts?: number;
  /**
   * Reads an object's ETag and size, for notifications without them: s3rver's Copy events carry no
   * ETag, where S3's events always do. Without it, such events are delivered as they are.
   */
  readonly head?: (bucket: string, key: string) => Promise<{ readonly etag?: string; readonly size: number }>;
}

/**
 * Turns a local S3 server's notifications into EventBridge events and delivers the ones that
 * match the rule pattern to a handler, in order, one at a time (at-least-once, like EventBridge).
 */
export class EventBus {
  private readonly options: EventBusOptions;
  private queue: Promise<void> = Promise.resolve();
  private readonly sources: { emitter: EventEmitter; listener: (n: S3Notification) => void }[] = [];
  private pending = 0;

  constructor(options: EventBusOptions) {
    this.options = options;
  }

  /** Starts listening to an emitter of S3 notifications (s3rver emits `event`). */
  attach(emitter: EventEmitter): void {
    const listener = (notification: S3Notification): void => {
      for (const record of notification.Records) this.publishRecord(record);
    };
    emitter.on('event', listener);
    this.sources.push({ emitter, listener });
  }

  /** Reshapes and publishes one notification record (also usable without an emitter). */
  publishRecord(record: S3NotificationRecord): void {
    const event = toEventBridgeEvent(record);
    if (event) this.publish(event);
  }

  /** Queues an EventBridge event for delivery when it matches the pattern. */
  publish(event: S3ObjectCreatedEvent): void {
    if (!matchesEventPattern(this.options.pattern, event)) return;
    this.pending += 1;
    this.queue = this.queue.then(() => this.deliver(event)).finally(() => (this.pending -= 1));
  }

  /** Resolves when every queued event has been delivered. */
  async idle(): Promise<void> {
    while (this.pending > 0) await this.queue;
  }

  /** Stops listening; queued deliveries still complete. */
  detach(): void {
    for (const { emitter, listener } of this.sources.splice(0)) emitter.off('event', listener);
  }

  private async deliver(event: S3ObjectCreatedEvent): Promise<void> {
    const maxAttempts = this.options.maxAttempts ?? 2;
    // Read the object once: a retry after the handler failed delivers the same event, never one
    // completed from a newer object written to the key since.
    let completed: S3ObjectCreatedEvent | undefined;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      try {
        completed ??= await this.complete(event);
        await this.options.handler(completed);
        return;
      } catch (err) {
        this.options.onError?.(err, event, attempt);
      }
    }
  }

  /** The event with the ETag and size S3 would have put in it, read from the object when missing. */
  private async complete(event: S3ObjectCreatedEvent): Promise<S3ObjectCreatedEvent> {
    const { bucket, object } = event.detail;
    if ((object.etag !== undefined && object.size !== undefined) || !this.options.head) return event;
    const key = decodeS3EventKey(object.key);
    let stored: { readonly etag?: string; readonly size: number };
    try {
      stored = await this.options.head(bucket.name, key);
    } catch (err) {
      throw new SlipwayError(
        'EVENT_INCOMPLETE',
        `the ${event.detail.reason} event of s3://${bucket.name}/${key} has no ETag, and reading it failed: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const etag = object.etag ?? stored.etag;
    return {
      ...event,
      detail: {
        ...event.detail,
        object: { ...object, size: object.size ?? stored.size, ...(etag !== undefined ? { etag } : {}) },
      },
    };
  }
}
