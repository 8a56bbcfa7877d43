// The HTTP ceiling of this machine for the benchmark: a bare node:http server (no framework, no
// routing, no inference) that reads each request body and answers with a fixed body. bench/serve
// loads it with the same client and requests as the service, so its throughput is what any
// Node.js HTTP/1.1 service on one event loop could reach here, however little it did per request.
//
// Run by bench/serve.ts as a child process; prints `{"port": N}` once listening.
import { createServer } from 'node:http';

/** About the size of the service's binary reply for the benchmark MLP (JSON header + 10 floats). */
const REPLY = Buffer.alloc(160, 0x20);

const server = createServer((request, response) => {
  request.on('data', () => undefined);
  request.on('end', () => {
    response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': REPLY.length });
    response.end(REPLY);
  });
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  console.log(JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 }));
});
process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
