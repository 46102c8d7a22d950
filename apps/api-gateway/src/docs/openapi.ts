import { resolveRoute } from '../routes';

type Json = Record<string, unknown>;
export interface ServiceDocument {
  upstream: string;
  /** The upstream's own document, or undefined when it could not be fetched. */
  doc?: Json;
  error?: string;
}

const METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);
const ERROR_REF = { $ref: '#/components/schemas/Error' };
/** Answers the gateway itself may give on any proxied route. */
const GATEWAY_RESPONSES: Record<string, string> = {
  '429': 'Rate limited (see retry-after)',
  '502': 'Upstream unreachable',
  '503': 'Upstream unavailable (circuit open)',
  '504': 'Upstream timed out',
};

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

    for (const [path, item] of Object.entries(isObject(doc.paths) ? doc.paths : {})) {
      if (!isObject(item) || resolveRoute('GET', path)?.upstream !== upstream) continue;
      const rewritten = rewriteRefs(item, renames) as Json;
      for (const [method, operation] of Object.entries(rewritten)) {
        if (!METHODS.has(method) || !isObject(operation)) continue;
        operation.tags ??= [upstream];
        const responses = (isObject(operation.responses) ? operation.responses : {}) as Json;
        for (const [status, description] of Object.entries(GATEWAY_RESPONSES)) {
          responses[status] ??= { description, content: { 'application/json': { schema: ERROR_REF } } };
        }
        operation.responses = responses;
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
    servers: [{ url: '/' }],
    paths: Object.fromEntries(Object.entries(paths).sort(([a], [b]) => a.localeCompare(b))),
    components: { securitySchemes, schemas },
    ...(Object.keys(unavailable).length ? { 'x-unavailable': unavailable } : {}),
  };
}
