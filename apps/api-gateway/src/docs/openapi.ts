import { resolveRoute } from '../routes';

type Json = Record<string, unknown>;
export interface ServiceDocument {
  upstream: string;
  /** The upstream's own document, or undefined when it could not be fetched. */
  doc?: Json;
  error?: string;
}

const METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);
const ERROR_BODY = { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } };
const RATE_HEADERS = {
  'ratelimit-limit': { $ref: '#/components/headers/RateLimitLimit' },
  'ratelimit-remaining': { $ref: '#/components/headers/RateLimitRemaining' },
};
const RETRY_AFTER = { 'Retry-After': { $ref: '#/components/headers/RetryAfter' } };
/** Headers the gateway sets; `ratelimit-*` are on every `/api` answer while rate limiting is on. */
const GATEWAY_HEADERS = {
  RetryAfter: { description: 'Seconds to wait before retrying', schema: { type: 'integer', minimum: 0 } },
  RateLimitLimit: { description: "Requests allowed in the current window of the route's group", schema: { type: 'integer', minimum: 0 } },
  RateLimitRemaining: { description: 'Requests left in the current window', schema: { type: 'integer', minimum: 0 } },
};
/** Answers the gateway itself may give on any proxied route. */
const GATEWAY_RESPONSES: Record<string, { description: string; headers?: Json }> = {
  '429': { description: 'Rate limited (see `retry-after`)', headers: RETRY_AFTER },
  '502': { description: 'Upstream unreachable' },
  '503': { description: 'Upstream unavailable (circuit open, see `retry-after`)', headers: RETRY_AFTER },
  '504': { description: 'Upstream timed out' },
};
const UNAUTHORIZED = { description: 'Missing, invalid or expired token (checked at the edge)', content: ERROR_BODY };

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Deep copy of `value` with every `$ref` to a renamed schema pointed at its new name. */
function rewriteRefs(value: unknown, renames: Map<string, string>): unknown {
  if (Array.isArray(value)) return value.map((v) => rewriteRefs(v, renames));
  if (!isObject(value)) return value;
  const out: Json = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/')) {
      const name = v.slice('#/components/schemas/'.length);
      out[key] = `#/components/schemas/${renames.get(name) ?? name}`;
    } else {
      out[key] = rewriteRefs(v, renames);
    }
  }
  return out;
}

/**
 * One OpenAPI document for the whole public API: each service's paths under `/api` (only those
 * the gateway routes to that service), components merged (a schema name two services define
 * differently is renamed `<service>.<Name>` in the second), each operation tagged by service and
 * given the gateway's own error answers. Services that could not be fetched are listed in
 * `x-unavailable` so the page still renders.
 */
export function mergeDocuments(services: ServiceDocument[]): Json {
  const paths: Record<string, Json> = {};
  const schemas: Json = {};
  const securitySchemes: Json = {};
  const headers: Json = { ...GATEWAY_HEADERS };
  const tags = new Map<string, string>();
  const unavailable: Record<string, string> = {};

  for (const { upstream, doc, error } of services) {
    if (!doc) {
      unavailable[upstream] = error ?? 'unavailable';
      continue;
    }
    const components = isObject(doc.components) ? doc.components : {};
    const renames = new Map<string, string>();
    const own = isObject(components.schemas) ? components.schemas : {};
    for (const [name, schema] of Object.entries(own)) {
      if (name in schemas && JSON.stringify(schemas[name]) !== JSON.stringify(schema)) renames.set(name, `${upstream}.${name}`);
    }
    for (const [name, schema] of Object.entries(own)) schemas[renames.get(name) ?? name] ??= rewriteRefs(schema, renames);
    if (isObject(components.securitySchemes)) for (const [name, scheme] of Object.entries(components.securitySchemes)) securitySchemes[name] ??= scheme;
    if (isObject(components.headers)) for (const [name, header] of Object.entries(components.headers)) headers[name] ??= header;
    const info = isObject(doc.info) ? doc.info : {};
    const tagDescription = typeof info.description === 'string' ? info.description : upstream;

    for (const [path, item] of Object.entries(isObject(doc.paths) ? doc.paths : {})) {
      if (!isObject(item) || resolveRoute('GET', path)?.upstream !== upstream) continue;
      const rewritten = rewriteRefs(item, renames) as Json;
      for (const [method, operation] of Object.entries(rewritten)) {
        if (!METHODS.has(method) || !isObject(operation)) continue;
        operation.tags ??= [upstream];
        for (const tag of operation.tags as string[]) tags.set(tag, tags.get(tag) ?? tagDescription);
        const responses = (isObject(operation.responses) ? operation.responses : {}) as Json;
        if (!resolveRoute(method.toUpperCase(), path)?.public) responses['401'] ??= UNAUTHORIZED;
        for (const [status, { description, headers }] of Object.entries(GATEWAY_RESPONSES)) {
          const own = isObject(responses[status]) ? responses[status] : { description, content: ERROR_BODY };
          responses[status] = { ...own, headers: { ...(isObject(own.headers) ? own.headers : {}), ...headers } };
        }
        for (const [status, response] of Object.entries(responses)) {
          if (isObject(response)) responses[status] = { ...response, headers: { ...(isObject(response.headers) ? response.headers : {}), ...RATE_HEADERS } };
        }
        operation.responses = Object.fromEntries(Object.entries(responses).sort(([a], [b]) => a.localeCompare(b)));
      }
      paths[`/api${path}`] = { ...(paths[`/api${path}`] ?? {}), ...rewritten };
    }
  }
  schemas.Error ??= {
    type: 'object',
    required: ['error'],
    properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' }, details: {} } } },
  };
  securitySchemes.bearer ??= { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' };

  return {
    openapi: '3.0.3',
    info: {
      title: 'CloudRetail API',
      version: '1.0.0',
      description: 'Every public endpoint, as served by the API gateway. Send `Authorization: Bearer <token>` (from /api/auth/login) to protected routes.',
    },
    servers: [{ url: '/', description: 'The gateway that served this document' }],
    tags: [...tags].sort(([a], [b]) => a.localeCompare(b)).map(([name, description]) => ({ name, description })),
    paths: Object.fromEntries(Object.entries(paths).sort(([a], [b]) => a.localeCompare(b))),
    components: { securitySchemes, headers, schemas },
    ...(Object.keys(unavailable).length ? { 'x-unavailable': unavailable } : {}),
  };
}
