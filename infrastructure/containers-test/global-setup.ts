import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DOCKER, STATE_FILE, type BuildState, freePort, sh, waitUntil, workspaceRoot } from './docker';

declare global {
  var containersRegistry: { child: ChildProcess; dir: string } | undefined;
}

/**
 * Before the container proofs: a Docker engine must answer (its absence fails the run), a real
 * registry (Debian's docker-registry) runs on a free loopback port, and the seven images are built
 * exactly as README says — `tools/build-images/build-images.sh --all --offline` (base images first)
 * — and pushed to it by digest.
 */
export default async function globalSetup(): Promise<void> {
  const info = sh(DOCKER, ['info', '--format', '{{.ServerVersion}}'], { allowFail: true });
  if (info.status !== 0) throw new Error(`the Docker engine does not answer (${DOCKER} info): start dockerd (.ci/run does)\n${info.out}`);
  sh('sh', ['-c', 'command -v docker-registry'], { allowFail: false });

  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cloudretail-registry-'));
  const config = path.join(dir, 'config.yml');
  writeFileSync(config, `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  const child = spawn('docker-registry', ['serve', config], { stdio: 'ignore' });
  globalThis.containersRegistry = { child, dir };
  const registryHost = `127.0.0.1:${port}`;
  await waitUntil('the registry', async () => ((await fetch(`http://${registryHost}/v2/`).then((r) => r.status, () => 0)) === 200 ? true : undefined), 15_000);

  const registry = `${registryHost}/cloudretail`;
  const revision = sh('git', ['rev-parse', 'HEAD']).out.trim();
  const tag = `ci-${revision.slice(0, 7)}`;
  const digestsFile = path.join(dir, 'digests.json');
  const started = Date.now();
  console.log(`\ncontainers: building the seven images and pushing them to ${registry} (tag ${tag})`);
  // Progress goes straight to the terminal: this is the longest step of the suite.
  const build = sh('tools/build-images/build-images.sh', ['--all', '--offline', '--no-scan', '--push', '--registry', registry, '--tag', tag, '--digests', digestsFile], { stdio: ['ignore', 'inherit', 'inherit'], allowFail: true });
  if (build.status !== 0) throw new Error('build-images.sh failed (its output above names the image and why)');
  console.log(`containers: built and pushed in ${Math.round((Date.now() - started) / 1000)} s`);

  const baseImages = Object.fromEntries([...sh('tools/containers/base-images.sh', ['--print-env']).out.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1], m[2]]));
  const state: BuildState = { registry, tag, revision, digests: JSON.parse(sh('cat', [digestsFile]).out) as Record<string, string>, baseImages };
  writeFileSync(STATE_FILE, JSON.stringify(state, null, 2));
  process.env.CONTAINERS_STATE_FILE = STATE_FILE;
  process.env.WORKSPACE_ROOT = workspaceRoot;
}
