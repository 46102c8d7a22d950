import { type SpawnSyncOptions, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const workspaceRoot = path.resolve(__dirname, '../..');
/** The Docker client; on Debian 12 `/usr/bin/docker` (20.10) builds with BuildKit, see .ci/run. */
export const DOCKER = process.env.DOCKER ?? 'docker';
/** Everything these tests start carries this label, so teardown can find what a failure left. */
export const TEST_LABEL = 'cloudretail.test=containers';
/** Where global-setup leaves what it built for the test files. */
export const STATE_FILE = path.join(os.tmpdir(), `cloudretail-containers-${process.ppid}-state.json`);

export interface BuildState {
  registry: string;
  tag: string;
  /** The commit the images were built from (HEAD when global-setup ran). */
  revision: string;
  /** app → `<registry>/<app>@sha256:…`, as build-images.sh --digests wrote it. */
  digests: Record<string, string>;
  /** NODE_IMAGE, DEBIAN_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE of the air-gapped base images. */
  baseImages: Record<string, string>;
}

export const readState = (): BuildState => JSON.parse(readFileSync(process.env.CONTAINERS_STATE_FILE ?? STATE_FILE, 'utf8')) as BuildState;

/** Runs a command; a non-zero exit throws with the command and the last lines of its output. */
export function sh(cmd: string, args: string[], options: SpawnSyncOptions & { allowFail?: boolean } = {}): { status: number; out: string } {
  const result = spawnSync(cmd, args, { cwd: workspaceRoot, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });
  if (result.error) throw new Error(`${cmd}: ${result.error.message}`);
  const out = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  if (result.status !== 0 && !options.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${result.status}:\n${out.split('\n').slice(-40).join('\n')}`);
  }
  return { status: result.status ?? -1, out };
}

export const docker = (...args: string[]) => sh(DOCKER, args).out.trim();

export function inspect<T = unknown>(ref: string, format: string): T {
  return JSON.parse(docker('inspect', '--format', `{{json ${format}}}`, ref)) as T;
}

export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.once('error', reject);
  });

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns something other than undefined, or fails naming `what`. */
export async function waitUntil<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number, details: () => string = () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not after ${timeoutMs} ms\n${details()}`);
    await sleep(100);
  }
}

/** The last log lines of a container, for failure messages. */
export const logsOf = (name: string, lines = 30) => sh(DOCKER, ['logs', '--tail', String(lines), name], { allowFail: true }).out;

/** Removes every container, network and volume these tests labelled. */
export function removeLabelled(): void {
  const containers = docker('ps', '-aq', '--filter', `label=${TEST_LABEL}`).split('\n').filter(Boolean);
  if (containers.length) docker('rm', '-f', '-v', ...containers);
}
