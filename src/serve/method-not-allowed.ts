import { METHODS } from 'node:http';
import type { FastifyInstance } from 'fastify';

/**
 * Starts recording the methods each route path answers; the function it returns (call it once all
 * routes are registered) adds, for every such path, a route for each other method Node's HTTP
 * parser accepts that answers 405 with an `Allow` header. A known path asked with the wrong method
 * thus gets 405 instead of the not-found 404, and its metrics carry the route pattern, never the
 * path asked. The answer is sent from `onRequest`, before the body is read, so its size or type
 * never matters.
 *
 * @example const addMethodNotAllowed = trackRouteMethods(app); await app.register(routes); addMethodNotAllowed();
 */
export function trackRouteMethods(app: FastifyInstance): () => void {
  // Fastify routes only the methods it knows (GET ... QUERY); any other method the parser lets
  // through (PROPFIND, MKCOL, M-SEARCH, ...) would go to the not-found handler even on a known
  // path. CONNECT never reaches the routes (Node hands it to the server's 'connect' event).
  for (const method of METHODS) {
    if (method !== 'CONNECT' && !app.supportedMethods.includes(method)) app.addHttpMethod(method);
  }
  const methodsByPath = new Map<string, Set<string>>();
  let sealed = false;
  app.addHook('onRoute', (route) => {
    if (sealed) return;
    const methods = methodsByPath.get(route.url) ?? new Set<string>();
    for (const method of [route.method].flat()) methods.add(method);
    methodsByPath.set(route.url, methods);
  });
  return () => {
    sealed = true;
    for (const [url, methods] of methodsByPath) {
      const others = app.supportedMethods.filter((method) => !methods.has(method));
      if (others.length === 0) continue;
      const allow = [...methods].sort().join(', ');
      app.route({
        method: others,
        url,
        exposeHeadRoute: false,
        onRequest: (request, reply) => {
          void reply
            .code(405)
            .header('allow', allow)
            .send({
              error: `method ${request.method} is not allowed on ${request.url.split('?')[0]}; use ${allow}`,
            });
        },
        // Never reached: onRequest has answered.
        handler: () => undefined,
      });
    }
  };
}
