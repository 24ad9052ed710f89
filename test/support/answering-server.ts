/**
 * An HTTP server on a free loopback port that gives every request the same answer, for tests of
 * how clients take answers a real server gives only when something is wrong (redirects, refusals,
 * throttling, server errors). It counts the requests, so retries can be told from none.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface AnsweringServer {
  /** `http://127.0.0.1:PORT/` */
  url: string;
  requests(): number;
  close(): Promise<void>;
}

export async function startAnsweringServer(status: number, headers: Record<string, string> = {}, body = ''): Promise<AnsweringServer> {
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    req.resume();
    res.writeHead(status, headers).end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    requests: () => requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
