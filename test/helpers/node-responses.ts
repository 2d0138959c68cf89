/**
 * Counts node:http ServerResponses made for connections to one local port: the requests a lean
 * exchange did not keep (it answers without them). ServerResponse.prototype.assignSocket is
 * wrapped until restore(); the upstreams in the same process answer on other ports.
 */
import { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface NodeResponseCount {
  count: number;
  restore(): void;
}

export function countNodeResponses(port: () => number): NodeResponseCount {
  const assignSocket = ServerResponse.prototype.assignSocket;
  const counter: NodeResponseCount = {
    count: 0,
    restore: () => {
      ServerResponse.prototype.assignSocket = assignSocket;
    },
  };
  ServerResponse.prototype.assignSocket = function (this: ServerResponse, socket: Socket) {
    if (socket.localPort === port()) counter.count++;
    return assignSocket.call(this, socket);
  };
  return counter;
}
