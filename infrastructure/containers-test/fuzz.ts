/**
 * A fuzz campaign through the gateway, driven by the merged OpenAPI document: for every operation,
 * valid, boundary and malformed inputs (types, sizes, unicode, nesting, missing and extra fields,
 * bad JSON, bad headers, wrong methods), as an anonymous client, a customer and an admin.
 * The rules it checks: no 5xx, every error in the envelope, and (checked by the caller around the
 * malformed phase) nothing written by a rejected request.
 */

type Schema = {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  const?: unknown;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number | boolean;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  additionalProperties?: boolean | Schema;
  nullable?: boolean;
};
type Parameter = { name: string; in: 'path' | 'query' | 'header' | 'cookie'; required?: boolean; schema?: Schema };
type Operation = { operationId?: string; parameters?: Parameter[]; requestBody?: { content?: Record<string, { schema?: Schema }> } };
export type OpenApi = { paths: Record<string, Record<string, Operation>>; components?: { schemas?: Record<string, Schema> } };

export interface FuzzRequest {
  kind: 'valid' | 'boundary' | 'malformed';
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  operation: string;
}

export interface Outcome {
  request: FuzzRequest;
  status: number;
  problem?: string;
}

/** A small deterministic PRNG (mulberry32), so a failing campaign can be replayed with its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const UNICODE = ['Ünïcödé', '日本語のテキスト', 'مرحبا بالعالم', '😀👍🏽🇩🇪', 'a\u0000b', '\u202eevil', 'ｆｕｌｌｗｉｄｔｈ', "'; DROP TABLE users; --", '<script>alert(1)</script>', '${jndi:ldap://x}'];
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

export function campaign(doc: OpenApi, { seed, tokens }: { seed: number; tokens: Record<'anonymous' | 'customer' | 'admin', string | undefined> }): FuzzRequest[] {
  const random = prng(seed);
  const pick = <T>(list: T[]): T => list[Math.floor(random() * list.length)];
  const deref = (s: Schema | undefined, depth = 0): Schema => {
    if (!s) return {};
    if (s.$ref && depth < 20) return deref(doc.components?.schemas?.[s.$ref.split('/').pop()!], depth + 1);
    if (s.allOf) return s.allOf.reduce<Schema>((acc, part) => {
      const d = deref(part, depth + 1);
      return { ...acc, ...d, properties: { ...acc.properties, ...d.properties }, required: [...(acc.required ?? []), ...(d.required ?? [])] };
    }, {});
    if (s.anyOf || s.oneOf) return deref((s.anyOf ?? s.oneOf)!.find((x) => deref(x, depth + 1).type !== 'null') ?? {}, depth + 1);
    return s;
  };
  const typeOf = (s: Schema) => (Array.isArray(s.type) ? s.type.find((t) => t !== 'null') : s.type) ?? (s.properties ? 'object' : undefined);

  /** A value that satisfies the schema (as far as a generator can tell). */
  const valid = (raw: Schema | undefined, depth = 0): unknown => {
    const s = deref(raw);
    if (s.const !== undefined) return s.const;
    if (s.enum) return pick(s.enum);
    switch (typeOf(s)) {
      case 'string':
        if (s.format === 'uuid') return crypto.randomUUID();
        if (s.format === 'email') return `fuzz-${crypto.randomUUID()}@example.com`;
        if (s.format === 'date-time') return new Date().toISOString();
        return 'x'.repeat(Math.max(s.minLength ?? 1, Math.min(s.maxLength ?? 12, 12)));
      case 'integer':
      case 'number':
        return Math.max(typeof s.exclusiveMinimum === 'number' ? s.exclusiveMinimum + 1 : (s.minimum ?? 1), Math.min(s.maximum ?? 5, 5));
      case 'boolean':
        return true;
      case 'array':
        return depth > 4 ? [] : [valid(s.items, depth + 1)];
      case 'object':
        return depth > 4 ? {} : Object.fromEntries(Object.entries(s.properties ?? {}).map(([k, v]) => [k, valid(v, depth + 1)]));
      default:
        return 'x';
    }
  };

  /** Values at and past the schema's edges. */
  const boundary = (raw: Schema | undefined): unknown[] => {
    const s = deref(raw);
    switch (typeOf(s)) {
      case 'string':
        return ['', 'x'.repeat((s.maxLength ?? 256) + 1), 'x'.repeat(s.maxLength ?? 64), pick(UNICODE), ' ', 'x'.repeat(100_000)];
      case 'integer':
      case 'number':
        return [0, -1, (s.minimum ?? 0) - 1, (s.maximum ?? 2 ** 31) + 1, 2 ** 53, -(2 ** 53), 1.5, 1e308];
      case 'array':
        return [[], Array.from({ length: 1000 }, () => valid(s.items))];
      default:
        return [];
    }
  };

  /** Values of the wrong shape. */
  const wrong = (raw: Schema | undefined): unknown[] => {
    const s = deref(raw);
    const all: unknown[] = [null, true, 12345, 'str', [], {}, [1, 2], { nested: { a: 1 } }, -0.5];
    const t = typeOf(s);
    if (!t && !s.enum) return []; // a schema without a type takes anything
    return all.filter((v) => (t === 'string' ? typeof v !== 'string' : t === 'integer' || t === 'number' ? typeof v !== 'number' : t === 'boolean' ? typeof v !== 'boolean' : t === 'array' ? !Array.isArray(v) : t === 'object' ? typeof v !== 'object' || v === null || Array.isArray(v) : true));
  };

  /** JSON text nested `depth` objects deep (too deep for JSON.stringify to write). */
  const nested = (depth: number) => `${'{"a":'.repeat(depth)}{"leaf":1}${'}'.repeat(depth)}`;
  const withNested = (base: Record<string, unknown>, field: string, depth: number) => JSON.stringify({ ...base, [field]: '\u0000nested' }).replace('"\\u0000nested"', nested(depth));

  const requests: FuzzRequest[] = [];
  for (const [template, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!METHODS.includes(method.toUpperCase())) continue;
      const operation = `${method.toUpperCase()} ${template}`;
      const params = op.parameters ?? [];
      const bodySchema = op.requestBody?.content?.['application/json']?.schema;
      const fill = (override: Record<string, unknown> = {}) => {
        let path = template.replace(/\{(\w+)\}/g, (_m, name: string) => encodeURIComponent(String(override[name] ?? valid(params.find((p) => p.name === name)?.schema ?? { type: 'string', format: 'uuid' }))));
        const query = params.filter((p) => p.in === 'query' && (p.required || p.name in override || random() < 0.5)).map((p) => [p.name, String(override[p.name] ?? valid(p.schema))]);
        if (query.length) path += `?${new URLSearchParams(query).toString()}`;
        return `/api${path.startsWith('/api') ? path.slice(4) : path}`;
      };
      const headersFor = (who: keyof typeof tokens, extra: Record<string, string> = {}) => ({
        ...(tokens[who] ? { authorization: `Bearer ${tokens[who]}` } : {}),
        ...(op.parameters?.some((p) => p.in === 'header' && p.name.toLowerCase() === 'idempotency-key') ? { 'idempotency-key': crypto.randomUUID() } : {}),
        ...extra,
      });
      const add = (kind: FuzzRequest['kind'], who: keyof typeof tokens, path: string, body?: unknown, raw?: string, headers: Record<string, string> = {}, verb = method.toUpperCase()) =>
        requests.push({
          kind,
          operation,
          method: verb,
          path,
          headers: { ...(body !== undefined || raw !== undefined ? { 'content-type': 'application/json' } : {}), ...headersFor(who, headers) },
          body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
        });

      for (const who of ['anonymous', 'customer', 'admin'] as const) {
        // valid
        add('valid', who, fill(), bodySchema ? valid(bodySchema) : undefined);
        // boundary: each parameter and each body field at its edges
        for (const p of params.filter((q) => q.in !== 'header')) for (const v of boundary(p.schema)) add('boundary', who, fill({ [p.name]: typeof v === 'string' && v.length > 2000 ? v.slice(0, 2000) : v }), bodySchema ? valid(bodySchema) : undefined);
        if (bodySchema) {
          const base = valid(bodySchema) as Record<string, unknown>;
          for (const [field, fieldSchema] of Object.entries(deref(bodySchema).properties ?? {})) {
            for (const v of boundary(fieldSchema)) add('boundary', who, fill(), { ...base, [field]: v });
          }
        }
      }
      // malformed: always as the most privileged client, so authorization cannot hide a parser bug
      const who = tokens.admin ? 'admin' : 'customer';
      for (const p of params.filter((q) => q.in === 'path')) for (const v of ['not-a-uuid', '0', 'x'.repeat(600), pick(UNICODE), '..%2F..%2Fetc', '%00', '-1']) add('malformed', who, fill({ [p.name]: v }), bodySchema ? valid(bodySchema) : undefined);
      // In a query string everything is text: only numbers, booleans and enums can be of the wrong kind.
      for (const p of params.filter((q) => q.in === 'query')) {
        const s = deref(p.schema);
        const bad = s.enum ? ['not-one-of-them'] : ['integer', 'number'].includes(typeOf(s) ?? '') ? ['abc', '1.5e', '[]', '-'] : typeOf(s) === 'boolean' ? ['maybe'] : [];
        for (const v of bad) add('malformed', who, fill({ [p.name]: v }), bodySchema ? valid(bodySchema) : undefined);
      }
      if (bodySchema) {
        const s = deref(bodySchema);
        const base = valid(bodySchema) as Record<string, unknown>;
        for (const [field, fieldSchema] of Object.entries(s.properties ?? {})) {
          for (const v of wrong(fieldSchema)) add('malformed', who, fill(), { ...base, [field]: v });
          const { [field]: _dropped, ...missing } = base;
          if (s.required?.includes(field)) add('malformed', who, fill(), missing);
          add('malformed', who, fill(), undefined, withNested(base, field, 5000));
        }
        // Unknown fields may be ignored (not an error), but must never be acted on.
        add('boundary', who, fill(), { ...base, unexpected: 'extra', ['__proto__']: { admin: true }, role: 'admin' });
        for (const raw of ['{', '{"a":', 'null', '[]', '"string"', '12', 'true', '{"a":1}{"b":2}', '\u0000', '{"a":"\ud800"}']) add('malformed', who, fill(), undefined, raw);
        add('malformed', who, fill(), undefined, JSON.stringify(base), { 'content-type': 'text/plain' });
        add('malformed', who, fill(), undefined, nested(100_000));
        add('malformed', who, fill(), undefined, JSON.stringify({ big: 'x'.repeat(1_100_000) }));
      }
      // bad headers: a public route may ignore them, so they are judged by the envelope rules only
      add('boundary', 'anonymous', fill(), bodySchema ? valid(bodySchema) : undefined, undefined, { authorization: 'Bearer not.a.jwt' });
      add('boundary', 'anonymous', fill(), bodySchema ? valid(bodySchema) : undefined, undefined, { authorization: 'Basic dXNlcjpwYXNz' });
      add('boundary', 'anonymous', fill(), bodySchema ? valid(bodySchema) : undefined, undefined, { authorization: `Bearer ${'A'.repeat(6000)}` });
      add('boundary', who, fill(), bodySchema ? valid(bodySchema) : undefined, undefined, { 'x-request-id': pick(UNICODE).replace(/[^\x20-\x7e]/g, '?') + 'x'.repeat(300) });
      // methods the path does not have
      for (const other of METHODS.filter((m) => !(m.toLowerCase() in item))) add('malformed', who, fill(), undefined, undefined, {}, other);
    }
  }
  return requests;
}

/** The rules every answer must keep, whatever was sent. */
export function judge(status: number, contentType: string | null, text: string): string | undefined {
  if (status >= 500) return `answered ${status}`;
  if (status < 400) return undefined;
  if (!contentType?.includes('application/json')) return `a ${status} with content-type ${contentType}`;
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code !== 'string' || typeof body.error?.message !== 'string') return `a ${status} without the error envelope: ${text.slice(0, 200)}`;
    if (/\bat .+\(.+:\d+:\d+\)/.test(text)) return `a ${status} that leaks a stack trace`;
  } catch {
    return `a ${status} whose body is not JSON: ${text.slice(0, 200)}`;
  }
  return undefined;
}
