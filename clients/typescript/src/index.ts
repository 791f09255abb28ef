/**
 * Typed client for smartpush-gateway.
 *
 * The message and service types are generated from proto/ by protoc-gen-es (see src/gen);
 * calls go over real gRPC (HTTP/2) with @connectrpc/connect-node's gRPC transport.
 */
import { type Client, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { createGrpcTransport } from "@connectrpc/connect-node";

import {
  BadRequestSchema,
  ErrorInfoSchema,
  QuotaFailureSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";
import { ErrorReason } from "./gen/smartpush/gateway/v1/errors_pb.js";
import { PushService } from "./gen/smartpush/gateway/v1/push_service_pb.js";

// Every message and service of the contract.
export * from "./gen/smartpush/gateway/v1/delivery_pb.js";
export * from "./gen/smartpush/gateway/v1/delivery_service_pb.js";
export * from "./gen/smartpush/gateway/v1/errors_pb.js";
export * from "./gen/smartpush/gateway/v1/permission_pb.js";
export * from "./gen/smartpush/gateway/v1/permission_service_pb.js";
export * from "./gen/smartpush/gateway/v1/push_service_pb.js";
export * from "./gen/smartpush/gateway/v1/smartapp_pb.js";
export * from "./gen/smartpush/gateway/v1/smartapp_service_pb.js";
export * from "./gen/smartpush/gateway/v1/template_pb.js";
export * from "./gen/smartpush/gateway/v1/template_service_pb.js";
export { Code, ConnectError } from "@connectrpc/connect";
// Building messages: `create(SendRequestSchema, {...})`, without a direct dependency on @bufbuild/protobuf.
export { create, toJson, fromJson } from "@bufbuild/protobuf";

export interface GatewayClientOptions {
  /** Interceptors, e.g. for auth headers or tracing. */
  interceptors?: Interceptor[];
  /** HTTP/2 keepalive ping interval in ms (default 60 s). */
  pingIntervalMs?: number;
}

/** A client of any of the gateway's services over gRPC, e.g. `createServiceClient(TemplateService, url)`. */
export function createServiceClient<T extends DescService>(
  service: T,
  baseUrl: string,
  options: GatewayClientOptions = {},
): Client<T> {
  const transport = createGrpcTransport({
    baseUrl,
    interceptors: options.interceptors,
    pingIntervalMs: options.pingIntervalMs ?? 60_000,
  });
  return createClient(service, transport);
}

/** A PushService client over gRPC. `baseUrl` is e.g. "http://127.0.0.1:50051" (https:// for TLS). */
export function createGatewayClient(baseUrl: string, options: GatewayClientOptions = {}): Client<typeof PushService> {
  return createServiceClient(PushService, baseUrl, options);
}

export interface FieldViolation {
  field: string;
  description: string;
}

/** A failed gateway call with its google.rpc details decoded. */
export interface GatewayError {
  /** The gRPC code (Connect's Code enum uses the gRPC numbers). */
  code: number;
  message: string;
  /** The ErrorReason value, for branching; UNSPECIFIED when the error carried none. */
  reason: ErrorReason;
  /** The reason's name as sent, e.g. "ERROR_REASON_PUSH_NOT_ENABLED". */
  reasonName: string;
  domain: string;
  metadata: Record<string, string>;
  /** The RqUID the gateway used upstream. */
  rqUid?: string;
  /** SmartPush's numeric status code, when SmartPush answered with one. */
  statusCode?: number;
  fieldViolations: FieldViolation[];
  /** Seconds to wait before retrying, when the gateway knows. */
  retryAfterSeconds?: number;
  quotaViolations: { subject: string; description: string }[];
}

/** Decode any error thrown by a gateway call. */
export function decodeError(err: unknown): GatewayError {
  const e = ConnectError.from(err);
  const info = e.findDetails(ErrorInfoSchema)[0];
  const bad = e.findDetails(BadRequestSchema)[0];
  const retry = e.findDetails(RetryInfoSchema)[0];
  const quota = e.findDetails(QuotaFailureSchema)[0];
  const metadata = { ...(info?.metadata ?? {}) };
  const reasonName = info?.reason ?? "";
  const reason = (ErrorReason as unknown as Record<string, ErrorReason>)[reasonName.replace(/^ERROR_REASON_/, "")];
  return {
    code: e.code,
    message: e.rawMessage,
    reason: reason ?? ErrorReason.UNSPECIFIED,
    reasonName,
    domain: info?.domain ?? "",
    metadata,
    rqUid: metadata["rq_uid"],
    statusCode: metadata["status_code"] !== undefined ? Number(metadata["status_code"]) : undefined,
    fieldViolations: (bad?.fieldViolations ?? []).map((v) => ({ field: v.field, description: v.description })),
    retryAfterSeconds: retry?.retryDelay
      ? Number(retry.retryDelay.seconds) + retry.retryDelay.nanos / 1e9
      : undefined,
    quotaViolations: (quota?.violations ?? []).map((v) => ({ subject: v.subject, description: v.description })),
  };
}
