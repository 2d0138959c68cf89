/**
 * Error replies: every error the gateway itself produces goes out as
 * `{"error":{"code","message","requestId"}}` with the status fixed by the registry and the security
 * headers from @fastify/helmet. Causes, certificate details and stacks stay in the log.
 */
import type { FastifyReply } from 'fastify';
import { ERRORS, type ErrorCode } from '../errors/registry.js';

export function errorBody(code: ErrorCode, requestId: string): string {
  return JSON.stringify({ error: { code, message: ERRORS[code].message, requestId } });
}

export function sendError(reply: FastifyReply, code: ErrorCode, requestId: string, opts: { close?: boolean } = {}): FastifyReply {
  const status = ERRORS[code].status ?? 500;
  reply.helmet();
  reply.code(status).header('content-type', 'application/json; charset=utf-8').header('x-request-id', requestId).header('cache-control', 'no-store');
  if (opts.close) reply.header('connection', 'close');
  return reply.send(errorBody(code, requestId));
}
