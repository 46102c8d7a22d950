import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ROOT } from './builds';
import { probe, waitUntil } from './processes';

const run = promisify(execFile);

/** The Docker client; on Debian 12 `/usr/bin/docker` (20.10) is the one that builds with BuildKit. */
export const DOCKER = process.env.DOCKER ?? 'docker';

/**
 * Runs the Docker client without blocking the event loop: the load generator runs in this process
 * and must keep sending while a container starts or stops. A failure names the command and its output.
 */
export async function docker(args: string[], timeoutMs = 120_000): Promise<string> {
  try {
    const { stdout } = await run(DOCKER, args, { cwd: ROOT, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
    return stdout.trim();
  } catch (error) {
    const e = error as { code?: string | number; stdout?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT') throw new Error(`the Docker client ${DOCKER} was not found (install Docker, or set DOCKER to the client)`, { cause: error });
    throw new Error(`${DOCKER} ${args.join(' ')} failed: ${e.stderr?.trim() || e.stdout?.trim() || e.message}`, { cause: error });
  }
}

/** Fails (never skips) with a clear message when no Docker engine answers. */
export async function requireDockerEngine(): Promise<string> {
  try {
    return await docker(['version', '--format', '{{.Server.Version}}'], 15_000);
  } catch (error) {
    throw new Error(`the container proof needs a running Docker engine: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Builds an app's image exactly as users do (`tools/build-images/build-images.sh`, air-gapped base
 * images, no scan: no vulnerability database is reachable here) and loads it into the engine.
 */
export async function buildImage(app: string, { registry = 'cloudretail-zd', tag = 'zero-downtime' } = {}): Promise<string> {
  try {
    await run('tools/build-images/build-images.sh', [app, '--offline', '--no-scan', '--registry', registry, '--tag', tag], {
      cwd: ROOT,
      env: { ...process.env, DOCKER },
      timeout: 600_000,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`building the ${app} image failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`, { cause: error });
  }
  return `${registry}/${app}:${tag}`;
}

export interface Container {
  name: string;
  port: number;
  url: string;
}

/**
 * Every container a scenario starts carries one label of this run and a name prefix, so that
 * `removeAll()` (in `afterAll` and `finally`) finds them all, also those of a failed `docker run`.
 */
export class ContainerGroup {
  readonly label: string;
  readonly prefix: string;

  constructor(readonly id = String(process.pid)) {
    this.label = `cloudretail.test=zero-downtime-${id}`;
    this.prefix = `cloudretail-zd-${id}`;
  }

  async list(): Promise<string[]> {
    return (await docker(['ps', '--all', '--quiet', '--filter', `label=${this.label}`])).split('\n').filter(Boolean);
  }

  async removeAll(): Promise<void> {
    const ids = await this.list();
    if (ids.length) await docker(['rm', '--force', '--volumes', ...ids]);
  }
}

/** The last lines a container wrote (the app logs to stdout and stderr), for failure messages. */
const logsOf = (name: string) =>
  run(DOCKER, ['logs', '--tail', '40', name], { maxBuffer: 16 * 1024 * 1024 }).then(
    ({ stdout, stderr }) => `${stdout}${stderr}`,
    (e: Error) => e.message,
  );

/**
 * `docker run` of the image as its own CMD (through tini), as an orchestrator would: host network
 * (it reaches the local Postgres and Redis and listens on `port`), read-only root filesystem with a
 * tmpfs /tmp; resolves once GET /health/ready answers 200.
 */
export async function startContainer(
  group: ContainerGroup,
  { name, image, port, env, readyTimeoutMs = 60_000 }: { name: string; image: string; port: number; env: Record<string, string>; readyTimeoutMs?: number },
): Promise<Container> {
  const fullName = `${group.prefix}-${name}`;
  await docker([
    'run',
    '--detach',
    '--name',
    fullName,
    '--label',
    group.label,
    '--network',
    'host',
    '--read-only',
    '--tmpfs',
    '/tmp',
    ...Object.entries({ ...env, PORT: String(port) }).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
    image,
  ]);
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(
    async () => {
      if ((await docker(['inspect', '--format', '{{.State.Running}}', fullName])) !== 'true') throw new Error(`${fullName} exited before it was ready:\n${await logsOf(fullName)}`);
      return (await probe(`${url}/health/ready`, 1000)).status === 200;
    },
    { timeoutMs: readyTimeoutMs, intervalMs: 200, describe: () => `${fullName} on port ${port} never became ready` },
  );
  return { name: fullName, port, url };
}

/**
 * `docker stop` (SIGTERM to tini, which forwards it: readiness 503, drain, exit), then the exit
 * code Docker recorded. A container that needed the SIGKILL after `graceSeconds` reports 137.
 */
export async function stopContainer(container: Container, graceSeconds = 30): Promise<number> {
  await docker(['stop', '--time', String(graceSeconds), container.name], (graceSeconds + 30) * 1000);
  return Number(await docker(['inspect', '--format', '{{.State.ExitCode}}', container.name]));
}
