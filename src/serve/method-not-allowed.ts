import { METHODS, ServerResponse } from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

/**
 * Node hands a CONNECT request to the server's 'connect' event, never to its request handler, and
 * with no listener drops the connection unanswered. This passes it to the routes on a response of
 * its own, so it is answered and counted like any other request (405 on a known path, 404
 * elsewhere); the service tunnels nothing, so the connection closes after the answer.
 */
function routeConnect(app: FastifyInstance): void {
  app.server.on('connect', (request: IncomingMessage, socket: Socket) => {
    // Node has taken its own listeners off the socket: a reset must not become an uncaught error.
    socket.on('error', () => socket.destroy());
    const response = new ServerResponse(request);
    response.shouldKeepAlive = false;
    try {
      response.assignSocket(socket);
    } catch {
      // Still busy with an earlier response (a pipelined CONNECT): drop it, as Node would.
      socket.destroy();
      return;
    }
    response.once('finish', () => socket.destroySoon());
    // Node's own responses emit 'close' when their socket closes; the request metrics wait for it.
    socket.once('close', () => response.emit('close'));
    app.server.emit('request', request, response);
  });
}

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
  // through (PROPFIND, MKCOL, M-SEARCH, ...) would go to the not-found handler even on a known path.
  for (const method of METHODS) {
    if (!app.supportedMethods.includes(method)) app.addHttpMethod(method);
  }
  routeConnect(app);
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
