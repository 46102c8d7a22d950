import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { APPS, APP_NAMES, type AppConfig, type AppName, appConfigs, workspaceRoot } from './support';
import { type Stage, contextSources, dockerignored, execForm, parseDockerfile, readDockerignore } from './dockerfile';

const dockerfileOf = (app: AppName) => path.join(workspaceRoot, 'apps', app, 'Dockerfile');
const ignore = readDockerignore(path.join(workspaceRoot, '.dockerignore'));
const all = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);
const last = (stage: Stage, keyword: string) => all(stage, keyword).at(-1);

let configs: AppConfig[];
beforeAll(async () => {
  configs = await appConfigs();
});

test('every app has a Dockerfile and the .dockerignore keeps secrets, history and build output out of the context', () => {
  expect(APP_NAMES.filter((app) => !existsSync(dockerfileOf(app)))).toEqual([]);
  for (const file of ['.git/config', '.env', 'node_modules/express/package.json', 'dist/apps/x/main.js', 'apps/x/node_modules/a', 'libs/db/test/db.test.ts', '.nx/cache/x']) {
    expect({ file, ignored: dockerignored(ignore, file) }).toEqual({ file, ignored: true });
  }
});

test('the seven Dockerfiles are one recipe: they differ only in the app name, its port and its description', () => {
  // Docker has no include, so the recipe is repeated per app; this keeps the copies from drifting.
  const normalised = (app: AppName) =>
    readFileSync(dockerfileOf(app), 'utf8')
      .replaceAll(app, '<app>')
      .replace(new RegExp(`\\b${APPS[app].port}\\b`, 'g'), '<port>')
      .replace(/^# <app>: .*$/m, '# <app>: <description>')
      .replace(/description="CloudRetail [^"]*"/, 'description="CloudRetail <description>"');
  const reference = normalised('product-service');
  for (const app of APP_NAMES) expect({ app, dockerfile: normalised(app) }).toEqual({ app, dockerfile: reference });
});

describe.each(APP_NAMES)('Dockerfile of %s', (app) => {
  const { stages } = parseDockerfile(dockerfileOf(app));
  const names = stages.map((s) => s.name);
  const runtime = stages.at(-1)!;

  test('is multi-stage, with a development target and the runtime as the last (default) stage', () => {
    expect(stages.length).toBeGreaterThanOrEqual(3);
    expect(names).toContain('development');
    expect(runtime.name).toBe('runtime');
  });

  test('pins every base image to an exact version and never uses latest', () => {
    for (const stage of stages) {
      if (names.includes(stage.image)) continue;
      expect(stage.image).not.toMatch(/:latest\b/);
      expect(stage.image).toMatch(/^[\w./-]+(:\d+\.\d+(\.\d+)?[\w.-]*(@sha256:[a-f0-9]{64})?|@sha256:[a-f0-9]{64})$/);
    }
    expect(runtime.image).toMatch(/slim/);
    // apt packages are pinned too, so a rebuild cannot silently change them.
    for (const run of stages.flatMap((s) => all(s, 'RUN'))) {
      const install = /apt-get install\s+([^&;]+)/.exec(run.args);
      if (!install) continue;
      for (const pkg of install[1].split(/\s+/).filter((p) => p && !p.startsWith('-'))) expect(pkg).toMatch(/^[\w.+-]+=\S+$/);
    }
  });

  test('builds with npm ci and nx in the builder, and installs only production dependencies of the pruned lockfile', () => {
    const runs = stages.flatMap((s) => all(s, 'RUN').map((r) => r.args));

    expect(runs.some((r) => /\bnpm ci\b/.test(r) && !r.includes('--omit=dev'))).toBe(true);
    expect(runs.some((r) => r.includes(`npx nx build ${app}`))).toBe(true);
    expect(runs.some((r) => /\bnpm ci\b.*--omit=dev/.test(r))).toBe(true);
    const prodCopy = stages.flatMap((s) => all(s, 'COPY')).find((c) => c.args.includes(`dist/apps/${app}/package-lock.json`));
    expect(prodCopy?.args).toContain(`dist/apps/${app}/package.json`);
  });

  test('copies only paths that exist and that the .dockerignore lets through', () => {
    for (const stage of stages) {
      for (const copy of [...all(stage, 'COPY'), ...all(stage, 'ADD')]) {
        for (const source of contextSources(copy)) {
          const where = `line ${copy.line}: ${source}`;
          expect({ where, exists: existsSync(path.join(workspaceRoot, source)) }).toEqual({ where, exists: true });
          expect({ where, ignored: dockerignored(ignore, source) }).toEqual({ where, ignored: false });
        }
      }
      for (const copy of all(stage, 'COPY').filter((c) => c.args.includes('--from='))) {
        expect(names).toContain(/--from=(\S+)/.exec(copy.args)![1]);
      }
    }
  });

  test('runs as a numeric non-root user with NODE_ENV=production, OCI labels, and the app port exposed', () => {
    const user = last(runtime, 'USER')?.args ?? 'root';
    const env = all(runtime, 'ENV').map((e) => e.args).join(' ');
    const labels = all(runtime, 'LABEL').map((l) => l.args).join(' ');

    expect(user).toMatch(/^[1-9]\d*(:\d+)?$/);
    expect(env).toMatch(/\bNODE_ENV=production\b/);
    expect(last(runtime, 'EXPOSE')?.args).toBe(String(APPS[app].port));
    for (const label of ['title', 'source', 'version', 'revision', 'created', 'licenses']) expect(labels).toContain(`org.opencontainers.image.${label}=`);
  });

  test('the exposed port is the default PORT of the app config, when the app exists', () => {
    const config = configs.find((c) => c.app === app);
    if (!config) return console.info(`${app}: no src/config.ts yet, port compared with the table only`);
    expect(config.vars.find((v) => v.variable === 'PORT')?.default).toBe(APPS[app].port);
  });

  test('starts node main.js in exec form under an init process, with a HEALTHCHECK on /health/live', () => {
    const entrypoint = execForm(last(runtime, 'ENTRYPOINT')?.args ?? '');
    const cmd = execForm(last(runtime, 'CMD')?.args ?? '');
    const healthcheck = last(runtime, 'HEALTHCHECK')?.args ?? '';
    const probe = execForm(healthcheck.slice(healthcheck.indexOf('CMD ') + 4));

    expect(cmd).toEqual(['node', 'main.js']);
    expect(entrypoint?.[0]).toMatch(/\/(tini|dumb-init)$/);
    expect(probe?.slice(0, 2)).toEqual(['node', '-e']);
    expect(probe?.[2]).toContain('/health/live');
    expect(probe?.[2]).toContain('process.env.PORT');
  });

  test('the development target runs the TypeScript source with reload', () => {
    const development = stages.find((s) => s.name === 'development')!;
    expect(execForm(last(development, 'CMD')!.args)).toEqual(expect.arrayContaining([`apps/${app}/src/main.ts`]));
  });
});
