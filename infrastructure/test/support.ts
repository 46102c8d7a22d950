import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parseAllDocuments } from 'yaml';
import { describeConfig, loadConfig, type z } from '@cloudretail/config';

export const workspaceRoot = path.resolve(__dirname, '../..');
/** The strict schemas live beside the repository (shared/), not in it; K8S_SCHEMAS_DIR overrides. */
export const schemasDir = process.env.K8S_SCHEMAS_DIR ?? path.resolve(workspaceRoot, '../shared/k8s-schemas');
export const k8sDir = path.join(workspaceRoot, 'infrastructure/kubernetes');

/** The seven deployable apps and the facts the manifests, compose file and images must agree on. */
export const APPS = {
  'api-gateway': { port: 8080, database: null },
  'user-service': { port: 3001, database: 'cloudretail_users' },
  'product-service': { port: 3002, database: 'cloudretail_products' },
  'order-service': { port: 3003, database: 'cloudretail_orders' },
  'inventory-service': { port: 3004, database: 'cloudretail_inventory' },
  'payment-service': { port: 3005, database: 'cloudretail_payments' },
  'event-bus': { port: 3006, database: 'cloudretail_events' },
} as const;
export type AppName = keyof typeof APPS;
export const APP_NAMES = Object.keys(APPS) as AppName[];

/**
 * The synchronous service-to-service calls that really happen (the *_SERVICE_URL settings). The
 * order saga talks to inventory and payment through events (Kafka), not HTTP.
 */
export const CALLS: Record<AppName, AppName[]> = {
  'api-gateway': ['user-service', 'product-service', 'order-service', 'inventory-service', 'payment-service', 'event-bus'],
  'user-service': [],
  'product-service': [],
  'order-service': ['product-service'],
  'inventory-service': ['product-service'],
  'payment-service': [],
  'event-bus': [],
};

/** Fails (never skips) when a tool the checks need is not installed. */
export function requireTool(tool: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  if (found.status !== 0) throw new Error(`${tool} is not installed; install it (see .ci/run and .github/workflows/ci.yml)`);
  return found.stdout.trim();
}

/** Runs a command; on failure the error carries its stdout and stderr. */
/**
 * The environment for an Nx command run from inside a test. Nx tracks task invocations per root
 * process to catch recursion; two test tasks that each build an app would look like one, so the
 * nested run starts a chain of its own (the builds themselves ran first: `dependsOn` in project.json).
 */
export function nestedNxEnv(): NodeJS.ProcessEnv {
  const { NX_INVOCATION_ROOT_PID: _root, ...env } = process.env;
  return env;
}

export function run(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): string {
  const result = spawnSync(cmd, args, { cwd: options.cwd ?? workspaceRoot, env: options.env ?? nestedNxEnv(), input: options.input, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${result.status}\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

export const kustomize = (dir: string): string => run('kubectl', ['kustomize', dir]);

// ---------- strict schema validation (shared/k8s-schemas, see its README) ----------

const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
const compiled = new Map<string, ValidateFunction>();

export function schemaFileFor({ apiVersion, kind }: { apiVersion: string; kind: string }): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  return `${kind.toLowerCase()}${group ? `-${group.split('.')[0]}` : ''}-${version}.json`;
}

function validatorFor(obj: { apiVersion: string; kind: string }): ValidateFunction {
  const file = schemaFileFor(obj);
  if (!compiled.has(file)) {
    const full = path.join(schemasDir, file);
    if (!existsSync(full)) throw new Error(`no schema for ${obj.apiVersion} ${obj.kind} (${full})`);
    compiled.set(file, ajv.compile(JSON.parse(readFileSync(full, 'utf8'))));
  }
  return compiled.get(file)!;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  // Rendered manifests are checked structurally by the schemas; the policy checks walk them loosely.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  spec?: any;
  data?: Record<string, string>;
  automountServiceAccountToken?: boolean;
}

export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text).flatMap((doc) => {
    if (doc.errors.length) throw new Error(doc.errors.map((e) => e.message).join('; '));
    const obj = doc.toJS();
    return obj ? [obj as K8sObject] : [];
  });
}

/** Strict-schema errors of every object in a multi-document YAML text (empty when all are valid). */
export function validateManifests(text: string): string[] {
  return parseManifests(text).flatMap((obj) => {
    const validate = validatorFor(obj);
    const { kind, metadata } = obj; // read before validate() narrows obj
    return validate(obj) ? [] : validate.errors!.map((e) => `${kind}/${metadata?.name} ${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`);
  });
}

// ---------- the apps' configuration schemas ----------

export interface AppConfig {
  app: AppName;
  schema: z.ZodObject;
  vars: ReturnType<typeof describeConfig>;
}

/**
 * The configSchema of every app whose src/config.ts exists now: the checks grow as apps land.
 * Loaded by computed path so the tool project has no static import of an app.
 */
export async function appConfigs(): Promise<AppConfig[]> {
  const found: AppConfig[] = [];
  for (const app of APP_NAMES) {
    const file = path.join(workspaceRoot, 'apps', app, 'src/config.ts');
    if (!existsSync(file)) continue;
    const schema = ((await import(file)) as { configSchema: z.ZodObject }).configSchema;
    found.push({ app, schema, vars: describeConfig(schema) });
  }
  return found;
}

/** Apps not written yet (no src/config.ts): listed so a reader sees what was not checked. */
export const appsWithoutConfig = (): AppName[] => APP_NAMES.filter((app) => !existsSync(path.join(workspaceRoot, 'apps', app, 'src/config.ts')));

/** Parses `env` with the app's schema exactly as the app does at start-up; returns the error or ''. */
export function configError(schema: z.ZodObject, env: Record<string, string>): string {
  try {
    loadConfig(schema, env);
    return '';
  } catch (error) {
    return (error as Error).message;
  }
}

/** Placeholder values of the right shape for keys whose real values live in Secrets. */
const standInTokenKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
export const SECRET_STAND_INS: Record<string, string> = {
  JWT_PRIVATE_KEY: standInTokenKey.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  JWT_PUBLIC_KEY: standInTokenKey.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  DATABASE_URL: 'postgres://app:secret@db.internal:5432/cloudretail',
  REDIS_URL: 'redis://:secret@redis.internal:6379',
  ADMIN_EMAIL: 'admin@cloudretail.com',
  ADMIN_PASSWORD: 'a-long-admin-password',
};

/** Keys of a `.env`-style file (comments and blank lines ignored). */
export function envFileKeys(file: string): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split('=')[0]);
}

/** Every file under `dir` (recursively) whose name passes `filter`. */
export function filesUnder(dir: string, filter: (name: string) => boolean): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && filter(e.name))
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

