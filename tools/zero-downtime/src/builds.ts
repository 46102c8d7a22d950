import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { sleep } from './processes';

export const ROOT = path.resolve(__dirname, '../../..');

/** Newest modification time of any .ts file under the given directories. */
function newestSource(dirs: string[]): number {
  let newest = 0;
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(full).mtimeMs);
    }
  };
  dirs.filter(existsSync).forEach(walk);
  return newest;
}

/** A cross-process lock (mkdir is atomic), so parallel test files do not build the same app at once. */
async function withLock<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
  const lock = path.join(ROOT, 'tmp', `${name}.lock`);
  mkdirSync(path.dirname(lock), { recursive: true });
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // A lock left behind by a killed run is stale after two minutes.
      if (Date.now() > deadline || Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now()) > 120_000) rmSync(lock, { recursive: true, force: true });
      await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    rmdirSync(lock);
  }
}

/**
 * The production build of an app (`dist/apps/<app>/main.js`), built with `npx nx build <app>`
 * when it is missing or older than the app's or the libs' sources (a stale build would lack,
 * say, the fault drills the blue-green scenario relies on).
 */
/** Nx tracks task invocations per root process; a build from inside a test task starts a chain of its own. */
function nestedNxEnv(): NodeJS.ProcessEnv {
  const { NX_INVOCATION_ROOT_PID: _root, ...env } = process.env;
  return env;
}

export async function ensureBuild(app: string): Promise<string> {
  const main = path.join(ROOT, 'dist/apps', app, 'main.js');
  const stale = () => !existsSync(main) || statSync(main).mtimeMs < newestSource([path.join(ROOT, 'apps', app, 'src'), path.join(ROOT, 'libs')]);
  return withLock(`build-${app}`, () => {
    if (stale()) execFileSync('npx', ['nx', 'build', app], { cwd: ROOT, stdio: 'pipe', env: { ...nestedNxEnv(), NX_DAEMON: 'false' } });
    // A private copy: a rebuild (another test file, another engineer) empties dist/apps/<app>
    // and must not pull the file from under replicas starting later in this run.
    const copy = path.join(ROOT, 'tmp/zero-downtime', `${app}-${process.pid}-${randomUUID().slice(0, 8)}`);
    mkdirSync(copy, { recursive: true });
    copyFileSync(main, path.join(copy, 'main.js'));
    return path.join(copy, 'main.js');
  });
}

/** Removes a private copy made by {@link ensureBuild} or {@link buildPreviousUserService}. */
export function removeBuild(main: string): void {
  rmSync(path.dirname(main), { recursive: true, force: true });
}

/** Replaces `from` with `to` in `text`, failing loudly when the source no longer looks as expected. */
function patch(text: string, file: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`The previous-release patch no longer applies to ${file}: "${from}" not found`);
  return text.replace(from, to);
}

/**
 * user-service as it was before migration 002: its migration list ends at 001-create-users and
 * its queries neither read nor write `preferences` (the column does not exist yet). Built from
 * today's sources with exactly those two differences, into tmp/zero-downtime (inside the
 * workspace, so the bundle's external packages resolve from node_modules).
 */
export async function buildPreviousUserService(): Promise<string> {
  const outfile = path.join(ROOT, 'tmp/zero-downtime', `user-service-previous-${process.pid}-${randomUUID().slice(0, 8)}`, 'main.js');
  await build({
    entryPoints: [path.join(ROOT, 'apps/user-service/src/main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    packages: 'external',
    tsconfig: path.join(ROOT, 'apps/user-service/tsconfig.app.json'),
    logLevel: 'silent',
    plugins: [
      {
        name: 'previous-release',
        setup(b) {
          b.onLoad({ filter: /user-service[\\/]src[\\/]data-access[\\/](user-repository|migrations[\\/]index)\.ts$/ }, (args) => {
            const text = readFileSync(args.path, 'utf8');
            const contents = args.path.endsWith('user-repository.ts')
              ? patch(text, args.path, "const COLUMNS = 'id, email, name, role, preferences, created_at';", "const COLUMNS = `id, email, name, role, '{}'::jsonb AS preferences, created_at`;")
              : patch(text, args.path, "name: '002-add-user-preferences'", "name: '002-add-user-preferences'") +
                "\nmigrations.splice(migrations.findIndex((m) => m.name === '002-add-user-preferences'));\n";
            return { contents, loader: 'ts' };
          });
        },
      },
    ],
  });
  return outfile;
}
