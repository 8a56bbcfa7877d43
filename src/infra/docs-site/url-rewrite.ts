/**
 * The CloudFront Function (viewer request) of the docs site: maps directory URLs to their
 * `index.html` so a private S3 origin can serve a static site without website hosting.
 *
 * The source of `handler` is shipped verbatim (`URL_REWRITE_SOURCE`), so it must stay plain
 * JavaScript that the cloudfront-js-2.0 runtime accepts: no imports, no closures over module state, ES2020 at most.
 */

/** The part of a CloudFront Function viewer-request event the function reads and writes. */
export interface ViewerRequestEvent {
  readonly request: { uri: string };
}

/** Map `/` -> `/index.html`, `/a/` -> `/a/index.html`, `/a` -> `/a/index.html`; keep paths whose last segment has a dot. */
export function handler(event: ViewerRequestEvent): { uri: string } {
  const request = event.request;
  const uri = request.uri;
  if (uri.charAt(uri.length - 1) === '/') {
    request.uri = uri + 'index.html';
  } else if (uri.substring(uri.lastIndexOf('/') + 1).indexOf('.') === -1) {
    request.uri = uri + '/index.html';
  }
  return request;
}

/** The function's source as deployed to CloudFront. */
export const URL_REWRITE_SOURCE = handler.toString();
