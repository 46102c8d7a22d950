import { z } from 'zod';

type Json = Record<string, unknown>;
type Io = 'input' | 'output';

const DEFS = '#/definitions/';
const COMPONENTS = '#/components/schemas/';
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Deep copy of `value` with every `$ref` passed through `rename`. */
function mapRefs(value: unknown, rename: (ref: string) => string): unknown {
  if (Array.isArray(value)) return value.map((v) => mapRefs(v, rename));
  if (!isObject(value)) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, k === '$ref' && typeof v === 'string' ? rename(v) : mapRefs(v, rename)]));
}

const refsOf = (value: unknown): string[] => {
  const found: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (isObject(v)) {
      for (const [k, x] of Object.entries(v)) {
        if (k === '$ref' && typeof x === 'string') found.push(x);
        else walk(x);
      }
    }
  };
  walk(value);
  return found;
};

/**
 * Zod → OpenAPI 3.0 schemas whose named parts (`.meta({ id })`) live in `components/schemas`.
 * `z.toJSONSchema` puts them in a `definitions` block beside each schema; here they are hoisted
 * and every `$ref` points at the component instead. Requests are described as zod reads them
 * (`io: 'input'`: defaults optional, extra keys allowed) and responses as the services write them
 * (`io: 'output'`); a named schema whose two forms differ gets a second component, `<Name>Input`.
 */
export function schemaComponents() {
  const components: Record<string, Json> = {};

  const convert = (schema: z.ZodType, io: Io) => {
    const { $schema: _ignored, definitions = {}, ...json } = z.toJSONSchema(schema, { io, target: 'openapi-3.0', unrepresentable: 'any' }) as Json & {
      definitions?: Record<string, Json>;
    };
    return { json: json as Json, definitions };
  };

  /** The JSON Schema of `schema` as used in a request (`input`) or a response (`output`), refs into components. */
  function add(schema: z.ZodType, io: Io): Json {
    const { json, definitions } = convert(schema, io);
    // Which named parts get their own `<Name>Input` component: those whose input form differs from
    // the output form, and (transitively) those that refer to one.
    const differs = new Set<string>();
    if (io === 'input') {
      const output = convert(schema, 'output').definitions;
      for (const name of Object.keys(definitions)) if (JSON.stringify(definitions[name]) !== JSON.stringify(output[name])) differs.add(name);
      for (let grown = true; grown; ) {
        grown = false;
        for (const name of Object.keys(definitions)) {
          if (!differs.has(name) && refsOf(definitions[name]).some((r) => differs.has(r.slice(DEFS.length)))) grown = !!differs.add(name);
        }
      }
    }
    const nameOf = (name: string) => (differs.has(name) ? `${name}Input` : name);
    const rename = (ref: string) => (ref.startsWith(DEFS) ? COMPONENTS + nameOf(ref.slice(DEFS.length)) : ref);
    for (const [name, def] of Object.entries(definitions)) components[nameOf(name)] ??= mapRefs(def, rename) as Json;
    return mapRefs(json, rename) as Json;
  }

  return { add, components };
}
