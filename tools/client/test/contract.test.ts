import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import type { Middleware } from 'openapi-fetch';
import { bearer, cloudRetailClient, orderEvents } from '../src/client';
import { customerJourney } from '../src/flow';
import { generateTypes } from '../src/generate';
import { ADMIN, startPlatform } from './platform';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const root = path.resolve(__dirname, '../../..');
const bin = (name: string) => path.join(root, 'node_modules/.bin', name);

let platform: Awaited<ReturnType<typeof startPlatform>>;
let doc: Json;
let dir: string;
let docFile: string;

beforeAll(async () => {
  platform = await startPlatform();
  const res = await fetch(`${platform.url}/api/docs/openapi.json`);
  doc = (await res.json()) as Json;
  dir = mkdtempSync(path.join(os.tmpdir(), 'openapi-'));
  docFile = path.join(dir, 'openapi.json');
  writeFileSync(docFile, JSON.stringify(doc, null, 2));
}, 120_000);
afterAll(async () => {
  await platform?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

/** Every answer the client gets, checked against the document: a documented status, media type and body. */
function conformance() {
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema({ $id: 'openapi.json', components: doc.components });
  const toComponents = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(toComponents) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, k === '$ref' && typeof x === 'string' ? `openapi.json${x}` : toComponents(x)])) : v;
  const seen: string[] = [];
  const problems: string[] = [];
  const check = async (method: string, template: string, response: Response) => {
    const where = `${method.toUpperCase()} ${template} → ${response.status}`;
    seen.push(where);
    const documented = doc.paths[template]?.[method.toLowerCase()]?.responses?.[String(response.status)];
    if (!documented) return void problems.push(`${where}: status not documented`);
    const type = (response.headers.get('content-type') ?? '').split(';')[0];
    const content = documented.content as Json | undefined;
    if (!content) return void (response.status !== 204 && (await response.clone().text()) && problems.push(`${where}: documented without a body, answered ${type}`));
    if (!content[type]) return void problems.push(`${where}: answered ${type || 'no content type'}, documented ${Object.keys(content).join(', ')}`);
    if (type !== 'application/json') return;
    const validate = ajv.compile(toComponents(content[type].schema) as object);
    if (!validate(await response.clone().json())) problems.push(`${where}: body does not match the document: ${ajv.errorsText(validate.errors)}`);
  };
  const middleware: Middleware = { onResponse: ({ request, response, schemaPath }) => check(request.method, schemaPath, response) };
  return { middleware, check, seen, problems };
}

describe('the merged OpenAPI document', () => {
  it('passes Redocly’s recommended rules with 0 errors (offline)', () => {
    const out = spawnSync(bin('redocly'), ['lint', docFile, '--extends', 'recommended', '--format', 'json'], {
      encoding: 'utf8',
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
    });
    const report = JSON.parse(out.stdout) as { totals: { errors: number; warnings: number }; problems: { ruleId: string; severity: string; message: string; location: { pointer: string }[] }[] };
    const errors = report.problems.filter((p) => p.severity === 'error').map((p) => `${p.ruleId}: ${p.message} at ${p.location[0]?.pointer}`);
    console.log(`redocly: ${report.totals.errors} errors, ${report.totals.warnings} warnings`);
    expect(errors).toEqual([]);
    expect(out.status).toBe(0);
  });

  it('when a document has an unresolved $ref, then Redocly fails it (the check is not a no-op)', () => {
    const broken = path.join(dir, 'broken.json');
    writeFileSync(broken, JSON.stringify({ ...doc, paths: { '/x': { get: { operationId: 'x', summary: 'x', security: [], responses: { '200': { description: 'ok', content: { 'application/json': { schema: { $ref: '#/definitions/Nope' } } } } } } } } }));
    const out = spawnSync(bin('redocly'), ['lint', broken, '--extends', 'recommended', '--format', 'json'], { encoding: 'utf8', env: { ...process.env, REDOCLY_TELEMETRY: 'off' } });
    expect(out.status).not.toBe(0);
    expect(out.stdout).toContain('no-unresolved-refs');
  });

  it('reports Spectral (oas + OWASP API Security) findings', () => {
    const ruleset = path.join(dir, '.spectral.json');
    writeFileSync(ruleset, JSON.stringify({ extends: ['spectral:oas', path.join(root, 'node_modules/@stoplight/spectral-owasp-ruleset/dist/ruleset.js')] }));
    const out = spawnSync(bin('spectral'), ['lint', docFile, '--ruleset', ruleset, '--format', 'json', '--quiet'], { encoding: 'utf8' });
    const findings = JSON.parse(out.stdout || '[]') as { code: string; severity: number }[];
    const byRule = new Map<string, number>();
    for (const f of findings) byRule.set(`${['error', 'warn', 'info', 'hint'][f.severity]} ${f.code}`, (byRule.get(`${['error', 'warn', 'info', 'hint'][f.severity]} ${f.code}`) ?? 0) + 1);
    console.log(`spectral (oas + owasp): ${findings.length} findings\n${[...byRule].sort().map(([rule, n]) => `  ${n} × ${rule}`).join('\n')}`);
    expect(out.stderr).not.toMatch(/error running|Cannot find/i);
    expect(Array.isArray(findings)).toBe(true);
  }, 90_000);

  it("the typed client is generated from it: src/api.d.ts is what openapi-typescript makes of the served document", () => {
    const generated = generateTypes(doc);
    const file = path.join(__dirname, '../src/api.d.ts');
    if (process.env.UPDATE_CLIENT_TYPES === '1') writeFileSync(file, generated);
    const committed = readFileSync(file, 'utf8').split('\n');
    const lines = generated.split('\n');
    const first = lines.findIndex((line, i) => line !== committed[i]);
    const stale = first === -1 && lines.length === committed.length ? [] : [`tools/client/src/api.d.ts is stale from line ${first + 1}: the API changed; review it, then run \`npm run client:generate\``, ...lines.slice(first, first + 5)];
    expect(stale).toEqual([]);
  }, 60_000);
});

describe('the API answers what the document says', () => {
  it('register → browse → order → live status (SSE) → admin refund, every answer valid against the document', async () => {
    const { middleware, check, seen, problems } = conformance();
    const client = cloudRetailClient(platform.url, { middleware: [middleware] });
    const admin = (await client.POST('/api/auth/login', { body: ADMIN })).data!.token;
    for (const available of [0, 5]) {
      const product = await client.POST('/api/products', {
        headers: bearer(admin),
        body: { sku: `SKU-${Math.random().toString(36).slice(2, 10).toUpperCase()}`, name: available ? 'Trail shoe' : 'Sold-out shoe', category: 'footwear', priceCents: 8999, currency: 'USD' },
      });
      expect(product.response.status).toBe(201);
      expect((await client.PUT('/api/inventory/{productId}', { params: { path: { productId: product.data!.id } }, headers: bearer(admin), body: { available } })).response.status).toBe(200);
    }

    const result = await customerJourney({ client, baseUrl: platform.url, admin: ADMIN });

    // The SSE answers, checked against the document as well.
    const customer = (await client.POST('/api/auth/login', { body: { email: result.email, password: 'correct horse battery' } })).data!.token;
    const stream = await orderEvents(platform.url, result.orderId, customer, { lastEventId: '0' });
    await check('GET', '/api/orders/{id}/events', stream.response);
    // Error answers: the envelope and the statuses the document promises.
    await client.POST('/api/auth/register', { body: { email: 'not-an-email', password: 'x', name: '' } });
    await client.GET('/api/users/me');
    await client.GET('/api/orders/{id}', { params: { path: { id: '00000000-0000-4000-8000-000000000000' } }, headers: bearer(customer) });
    await client.POST('/api/payments/{id}/refund', { params: { path: { id: result.paymentId } }, headers: bearer(customer) });
    await client.PATCH('/api/users/me', { headers: bearer(customer), body: { preferences: JSON.parse('{"a":'.repeat(200) + '1' + '}'.repeat(200)) } });

    expect(result.statuses).toEqual(expect.arrayContaining(['CONFIRMED', 'REFUNDED']));
    expect(seen).toEqual(
      expect.arrayContaining(['POST /api/auth/register → 400', 'GET /api/users/me → 401', 'GET /api/orders/{id} → 404', 'POST /api/payments/{id}/refund → 403', 'PATCH /api/users/me → 400', 'GET /api/orders/{id}/events → 200']),
    );
    expect(problems).toEqual([]);
  }, 90_000);

  it('npm run demo walks the journey against the running platform, narrating it, and exits 0', async () => {
    // Asynchronously: the platform runs in this process and must keep answering.
    const demo = await promisify(execFile)(bin('tsx'), [path.join(root, 'tools/demo/demo.ts'), platform.url], { encoding: 'utf8', env: { ...process.env, ADMIN_EMAIL: ADMIN.email, ADMIN_PASSWORD: ADMIN.password }, timeout: 60_000 });

    expect(demo.stderr).toBe('');
    expect(demo.stdout).toMatch(/registered .*@example.com[\s\S]*live status: CONFIRMED[\s\S]*live status: REFUNDED[\s\S]*done in/);
  }, 70_000);

  it('when the platform is not there, then the demo says so and exits 1', () => {
    const demo = spawnSync(bin('tsx'), [path.join(root, 'tools/demo/demo.ts'), 'http://127.0.0.1:9'], { encoding: 'utf8', timeout: 30_000 });

    expect(demo.stderr).toContain('nothing answers at http://127.0.0.1:9');
    expect(demo.status).toBe(1);
  });

  it('when an answer differs from the document, then the check reports it (the diff is not a no-op)', async () => {
    const { check, problems } = conformance();
    await check('GET', '/api/products/{id}', new Response(JSON.stringify({ id: 1 }), { status: 200, headers: { 'content-type': 'application/json' } }));
    await check('GET', '/api/products', new Response('', { status: 418 }));
    expect(problems).toEqual([expect.stringContaining('body does not match'), expect.stringContaining('418: status not documented')]);
  });
});
